"""The two files through which control and the engine keep jackgen's JACK connections.

``<runtime>/connections.now.json``: what the engine sees connected to its ports (it writes it).
``<runtime>/connections.want.json``: what control wants connected (the session's saved map).
Both map one of jackgen's port names to the sorted list of its peers.
"""

from __future__ import annotations

import json
from pathlib import Path

WANT_FILE = "connections.want.json"
NOW_FILE = "connections.now.json"


def read_map(path: Path) -> dict[str, list[str]] | None:
    """A connections file, or None if it is missing or not one."""
    try:
        data = json.loads(path.read_text())
        return {str(k): sorted(str(p) for p in v) for k, v in data.items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return None

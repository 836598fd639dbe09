"""The two files through which control and the engine keep jackgen's JACK connections.

``<runtime>/connections.now.json``: what the engine sees connected to its ports (it writes it).
``<runtime>/connections.want.json``: what control wants connected (the session's saved map), as
``{"restore": token, "connections": map}``; the engine makes it at its start and whenever the token
changes (a session loaded), not each time control mirrors what the engine published.
A map takes one of jackgen's port names to the sorted list of its peers.
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


def read_want(path: Path) -> tuple[str, dict[str, list[str]]] | None:
    """The wanted connections file: (restore token, map), or None."""
    try:
        data = json.loads(path.read_text())
        conns = data["connections"]
        return str(data.get("restore", "")), {str(k): sorted(str(p) for p in v) for k, v in conns.items()}
    except (OSError, ValueError, AttributeError, TypeError, KeyError):
        return None

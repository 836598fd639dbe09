"""Take ids and what a take's JSON says about it.

A take is one generated variation: ``audio_gen/<take>.wav`` (or ``.flac``) with ``<take>.json``
beside it. Its id is the job id (``20261130-191500-a1b2c3``), with ``-K`` for variation K.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

from jackgen.common.files import read_json

TAKE_RE = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}(-[0-9]+)?$")


def new_take_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def tempo_from_metadata(path: str | Path) -> float | None:
    """A take's tempo from the ``<take>.json`` beside it (what the generator used), if any."""
    d = read_json(Path(path).with_suffix(".json"))
    if not isinstance(d, dict):
        return None
    for v in (d.get("bpm"), (d.get("params") or {}).get("bpm")):
        if isinstance(v, (int, float)) and 20 <= v <= 400:
            return float(v)
    return None

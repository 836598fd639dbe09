"""How worker processes talk to control: JSON lines on stdin/stdout, and atomic JSON files.

Shared by the feeder and the generator workers (and control's session file), so
every child speaks the same framing: one JSON object per line, requests in,
events out; a bad line gets an ``error`` event, never a crash.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXIT_UNAVAILABLE = 4  # a worker's exit code for "this backend cannot run here": control does not restart it


def stdout_emitter() -> Callable[[dict], None]:
    """A thread-safe ``emit(event)`` that writes one JSON line to stdout and flushes it."""
    lock = threading.Lock()

    def emit(msg: dict) -> None:
        line = json.dumps(msg, default=str)  # an odd value in metadata must not kill the process
        with lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    return emit


def serve_stdin(handle: Callable[[dict], bool], emit: Callable[[dict], None]) -> None:
    """Feed each JSON-object line on stdin to ``handle`` until it returns False or stdin ends."""
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ValueError("request must be a JSON object")
            if not handle(req):
                break
        except (ValueError, KeyError, TypeError) as e:
            emit({"event": "error", "message": f"bad request: {e}"})


def atomic_write_json(path: Path, data: Any) -> None:
    """Write JSON so that a crash leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_primed(ring, frames, written: int, prefill: int, primed: bool, on_primed: Callable[[int], None],
                 should_stop: Callable[[], bool], max_ahead: int | None = None) -> tuple[int, bool]:
    """Write a stream's frames into its ring; call ``on_primed(frames written)`` once ``prefill``
    frames are in. With ``max_ahead`` the ring never holds more than that for the consumer — and
    the consumer only starts after "primed" — so the prefill goes in first, then the rest.
    Returns (written, primed)."""
    if not primed:
        k = max(0, prefill - written)
        if k and max_ahead is not None:
            written += ring.write_blocking(frames[:k], should_stop=should_stop, max_ahead=max_ahead)
            frames = frames[k:]
        if max_ahead is None:
            written += ring.write_blocking(frames, should_stop=should_stop)
            frames = frames[:0]
        if written >= prefill:
            primed = True
            on_primed(written)
    if frames.shape[0]:
        written += ring.write_blocking(frames, should_stop=should_stop, max_ahead=max_ahead)
    return written, primed

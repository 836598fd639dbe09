"""How the feeder talks to control: JSON lines on stdin/stdout.

One JSON object per line, requests in, events out; a bad line gets an ``error`` event, never a
crash. (Generator workers take their jobs from the Redis queue instead; ``EXIT_UNAVAILABLE`` is
their exit code too.)
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable

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

"""Control's side of keeping JACK connections: the session's saved map, in and out of the engine.

The engine keeps the connections with its own JACK client (``jackgen.daemon.engine.connections``):
it publishes what is connected to ``<runtime>/connections.now.json`` and makes what control
wants, ``<runtime>/connections.want.json``. Control copies the first into
``sessions/<name>/connections.json`` when it changes and writes the second from the session
(at its start and when a session is loaded), so an engine, a JACK server or control can restart
and the connections come back. No libjack here: control cannot be taken down by a JACK server
that goes away.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

from jackgen.common.files import atomic_write_json
from jackgen.common.jackconn import NOW_FILE, WANT_FILE, read_map

log = logging.getLogger("jackgen.connections")


class ConnectionStore:
    def __init__(self, runtime: Path, path: Path) -> None:
        self.runtime = runtime
        self.path = path  # the session's connections.json
        self.saved: dict[str, list[str]] = read_map(path) or {}
        self._now_mtime: int | None = None
        self.token = ""

    def use_session(self, path: Path) -> None:
        """A session (at control's start, or loaded): its connections are made now and wanted from now on."""
        self.path = path
        self.saved = read_map(path) or {}
        self.token = uuid.uuid4().hex[:12]
        self.publish_wanted()

    def publish_wanted(self) -> None:
        """What a (re)started engine is to make; the engine makes it at once only when the token is new."""
        try:
            self.runtime.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.runtime / WANT_FILE, {"restore": self.token, "connections": self.saved})
        except OSError as e:
            log.warning("cannot write %s: %s", self.runtime / WANT_FILE, e)

    def update(self) -> bool:
        """The engine published a new map: keep it in the session; True if saved."""
        now_path = self.runtime / NOW_FILE
        try:
            mtime = now_path.stat().st_mtime_ns
        except OSError:
            return False
        if mtime == self._now_mtime:
            return False
        snap = read_map(now_path)
        if snap is None:
            return False
        self._now_mtime = mtime
        if snap == self.saved or not any(snap.values()) and not self.saved:
            return False
        self.saved = snap
        atomic_write_json(self.path, snap)
        self.publish_wanted()  # what a restarted engine (or JACK server) is to bring back
        return True

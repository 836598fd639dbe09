"""Remember who is connected to jackgen's JACK ports and restore it after a restart.

When the engine dies, JACK drops every connection to its ports (Ardour's record
inputs, the monitor outputs). Control keeps a snapshot, taken with a small JACK
client of its own that is never activated (it only queries and connects, and has
no process callback), in ``sessions/<name>/connections.json``, and reconnects
when an engine says hello: after an engine crash, and after a restart of jackgen.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import jack

from jackgen.common.files import atomic_write_json

log = logging.getLogger("jackgen.connections")
libjack_log = logging.getLogger("jackgen.libjack")

RETRY_FIRST_S = 0.5  # while the JACK server is gone, control's client retries after this …
RETRY_MAX_S = 10.0  # … doubling up to this


def quiet_libjack() -> None:
    """Send libjack's own messages to the log at debug level instead of stderr.

    libjack prints three lines to stderr for every failed connection attempt ("Cannot connect to
    server socket …"); under systemd each retry would land in the journal. Process-wide; called
    by control, whose only JACK client is this module's."""
    jack.set_error_function(lambda msg: libjack_log.debug("%s", msg))
    jack.set_info_function(lambda msg: libjack_log.debug("%s", msg))


class ConnectionKeeper:
    def __init__(self, client_name: str, server: str | None, path: Path) -> None:
        self.prefix = client_name + ":"
        self.server = server
        self.path = path
        self._client: jack.Client | None = None
        self.saved: dict[str, list[str]] = self._load()
        self._next_try = 0.0  # monotonic time before which no new connection is attempted
        self._retry_s = RETRY_FIRST_S
        self._missing = False  # the server was not reachable at the last attempt (said once in the log)

    def _load(self) -> dict[str, list[str]]:
        try:
            data = json.loads(self.path.read_text())
            return {str(k): [str(p) for p in v] for k, v in data.items()}
        except (OSError, ValueError, AttributeError):
            return {}

    def client(self) -> jack.Client | None:
        """The (never activated) JACK client control uses for queries, transport and connections."""
        return self._jack()

    def _jack(self) -> jack.Client | None:
        """The client, connecting if need be; while the server is gone, attempts back off (0.5 s
        doubling to 10 s) and the log says so once, and once more when it is back."""
        if self._client is None:
            now = time.monotonic()
            if now < self._next_try:
                return None
            try:
                self._client = jack.Client("jackgen-control", no_start_server=True, servername=self.server)
            except jack.JackError as e:
                self._next_try = now + self._retry_s
                self._retry_s = min(self._retry_s * 2, RETRY_MAX_S)
                if not self._missing:
                    self._missing = True
                    log.warning("the JACK server %s is not reachable (%s); control keeps trying quietly",
                                repr(self.server) if self.server else "(default)", e)
                return None
            if self._missing:
                log.info("the JACK server is reachable again")
            self._missing, self._retry_s, self._next_try = False, RETRY_FIRST_S, 0.0
        return self._client

    def snapshot(self) -> dict[str, list[str]] | None:
        """Current connections of our ports, or None if JACK or the engine is not there."""
        c = self._jack()
        if c is None:
            return None
        try:
            ours = c.get_ports(self.prefix)
            if not ours:
                return None
            return {p.name: sorted(q.name for q in c.get_all_connections(p)) for p in ours}
        except jack.JackError:
            self.close()
            return None

    def update(self) -> bool:
        """Take a snapshot and save it if it changed; returns True if saved."""
        snap = self.snapshot()
        if snap is None or snap == self.saved:
            return False
        self.saved = snap
        atomic_write_json(self.path, snap)
        return True

    def restore(self) -> int:
        """Reconnect everything in the last snapshot that is missing; returns how many."""
        c = self._jack()
        if c is None or not self.saved:
            return 0
        made = 0
        for ours, peers in self.saved.items():
            for peer in peers:
                try:
                    port = c.get_port_by_name(ours)
                    src, dst = (ours, peer) if port.is_output else (peer, ours)
                    if peer not in [q.name for q in c.get_all_connections(port)]:
                        c.connect(src, dst)
                        made += 1
                except jack.JackError as e:
                    log.info("could not restore %s <-> %s: %s", ours, peer, e)
        if made:
            log.info("restored %d JACK connection(s) to jackgen's ports", made)
        return made

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except jack.JackError:
                pass
            self._client = None

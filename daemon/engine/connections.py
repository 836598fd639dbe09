"""Remember who is connected to jackgen's JACK ports and restore it after a restart.

When the engine or the JACK server dies, JACK drops every connection to jackgen's
ports (Ardour's record inputs, the monitor outputs). The engine keeps them, with its
own JACK client, from its main thread (never the process callback), every 2 s:

- it publishes what is connected now to ``<runtime>/connections.now.json``, which
  control copies into the session (``sessions/<name>/connections.json``);
- it makes what control wants, ``<runtime>/connections.want.json`` (the session's
  saved connections), at its start and whenever control writes that file, retrying
  what is missing for 30 s (a peer such as Ardour may come up after jackgen).

Control itself holds no JACK client: a libjack client touches the server's shared
memory, and a server that goes away under it can crash the process that holds it.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import jack

from jackgen.common.files import atomic_write_json
from jackgen.common.jackconn import NOW_FILE, WANT_FILE, read_want

log = logging.getLogger("jackgen.connections")

RETRY_S = 30.0  # wanted connections whose peer is missing are retried this long


class ConnectionKeeper:
    def __init__(self, client: jack.Client, ports: list, runtime: Path) -> None:
        self.client = client
        self.ports = ports
        self.want_path = runtime / WANT_FILE
        self.now_path = runtime / NOW_FILE
        self._want_mtime: int | None = None
        self._token: str | None = None
        self.want: dict[str, list[str]] = {}
        self._made: set[tuple[str, str]] = set()  # wanted connections already made once
        self._retry_until = 0.0
        self.published: dict[str, list[str]] | None = None
        self.restored = 0

    def tick(self) -> None:
        """Main thread, every couple of seconds: restore what is wanted and missing, then publish."""
        try:
            mtime = self.want_path.stat().st_mtime_ns
        except OSError:
            mtime = None
        if mtime is not None and mtime != self._want_mtime:
            self._want_mtime = mtime
            got = read_want(self.want_path)
            if got is not None and got[0] != self._token:  # our start, or a session loaded
                self._token, self.want = got
                self._made.clear()
                self._retry_until = time.monotonic() + RETRY_S
        if self.want and time.monotonic() < self._retry_until:
            if self.restore() == 0:
                self._retry_until = 0.0  # all there
        self.publish()

    def snapshot(self) -> dict[str, list[str]]:
        out = {}
        for p in self.ports:
            try:
                out[p.name] = sorted(q.name for q in self.client.get_all_connections(p))
            except jack.JackError:
                out[p.name] = []
        return out

    def restore(self) -> int:
        """Make the wanted connections that are missing; returns how many are still missing."""
        missing = 0
        by_name = {p.name: p for p in self.ports}
        for ours, peers in self.want.items():
            port = by_name.get(ours)
            if port is None:
                continue
            try:
                have = {q.name for q in self.client.get_all_connections(port)}
            except jack.JackError:
                have = set()
            for peer in peers:
                if (ours, peer) in self._made:
                    continue
                if peer in have:
                    self._made.add((ours, peer))
                    continue
                try:
                    src, dst = (ours, peer) if port.is_output else (peer, ours)
                    self.client.connect(src, dst)
                    self._made.add((ours, peer))
                    self.restored += 1
                    log.info("restored JACK connection %s -> %s", src, dst)
                except jack.JackError:
                    missing += 1  # the peer is not there (yet)
        return missing

    def publish(self) -> None:
        snap = self.snapshot()
        if snap == self.published:
            return
        try:
            self.now_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.now_path, snap)
            self.published = snap
        except OSError as e:
            log.warning("cannot write %s: %s", self.now_path, e)


def runtime_files_gone(runtime: Path) -> None:
    for name in (WANT_FILE, NOW_FILE):
        try:
            os.unlink(runtime / name)
        except OSError:
            pass

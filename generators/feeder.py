"""The feeder worker: streams audio files into track rings ahead of playback.

The supervisor (or systemd: ``jackgen-feeder.service``) runs one (``jackgen feeder``); it listens
on a unix socket in the runtime folder (``feeder.sock``) and control connects to it, so either
can restart while the other goes on streaming. They talk in JSON lines:

    stdin   {"op": "stream", "id", "track" (0-based), "epoch", "path", "rate",
             "prefill_frames", "resume_from" (frames already delivered, or null), chain…}
            {"op": "relay", "id", "track", "epoch", "rate", "prefill_frames", "key", chain…}: a remote
            worker's stream, read from the Redis key (``jackgen.generators.relay``)
            {"op": "chain", "track", "change"}   {"op": "cancel", "track"}   {"op": "quit"}
            {"op": "midi", "track", "events": [[stream frame, [bytes…]]…]}: live MIDI for the
            instrument heading the chain of a track streaming "live:instrument" (``producer.LIVE``)
    stdout  the producer events (``jackgen.generators.producer``): {"event": "primed", "id",
            "track", "epoch", "frames"}, then {"event": "stream_end", "state": "eos" |
            "cancelled" | "error", "frames", "message"?}; {"event": "error", "message"} for a
            request it cannot read; {"event": "relay_counters", "gaps", "gap_frames", "bad"} after a
            relayed stream. With a Redis URL it also lands remote workers' takes (``Lander``).
            On each connection, after the events that waited for one (the last 2 000 while no
            control was connected): {"event": "hello", "pid", "feeds": [{"track", "epoch", "id"}]},
            what it streams now, so a restarted control knows which of its streams go on.

"primed" is sent once ``prefill_frames`` are in the ring (or the whole file is),
so control can tell the engine to start with audio already waiting. Each stream
runs in its own thread, through the one producer loop (``RingFeed``); the ring's
``write_blocking`` sleeps politely while the ring is full.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

from jackgen.bridge.crumb import open_crumb
from jackgen.bridge.instance import InstanceRings
from jackgen.common.link import EXIT_RINGS_REPLACED
from jackgen.common.memtrace import install_from_env
from jackgen.generators.producer import RingFeed, file_chunks

log = logging.getLogger("jackgen.feeder")


class Feeder:
    def __init__(self, rings: InstanceRings, emit, crumb: np.ndarray | None = None, redis_client=None) -> None:
        self.rings = rings
        self.redis = redis_client  # binary-safe: the relay reads remote workers' audio with it
        self.relay_counters: dict = {}
        self.emit = emit
        self.crumb = crumb if crumb is not None else np.zeros(len(rings.tracks), dtype=np.int64)  # one word a track
        self._cancel: dict[int, threading.Event] = {}
        self._threads: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()
        self._feeds: dict[int, RingFeed] = {}

    def handle(self, req: dict) -> bool:
        op = req.get("op")
        if op in ("stream", "relay"):
            self.start(req)
        elif op == "chain":  # a change to the plugin chain of a track being fed
            with self._lock:
                feed = self._feeds.get(int(req["track"]))
            stage = feed.stage if feed is not None else None
            if stage is not None:
                stage.submit(req["change"])
        elif op == "midi":  # live MIDI for the instrument of a track playing live: [[stream frame, [bytes…]]…]
            with self._lock:
                feed = self._feeds.get(int(req["track"]))
            stage = feed.stage if feed is not None else None
            try:
                events = [(int(f), bytes(d)) for f, d in req["events"]]
            except (TypeError, ValueError, KeyError) as e:
                self.emit({"event": "error", "id": req.get("id"), "message": f"bad midi events: {e}"})
                return True
            if stage is not None:
                stage.submit_midi(events)
        elif op == "cancel":
            self.cancel(int(req["track"]))
        elif op == "quit":
            return False
        else:
            self.emit({"event": "error", "id": req.get("id"), "message": f"unknown op {op!r}"})
        return True

    def feeds(self) -> list[dict]:
        with self._lock:
            return [{"track": t, "epoch": f.epoch, "id": f.base.get("id")} for t, f in self._feeds.items()]

    def cancel(self, track: int, wait: bool = True) -> None:
        with self._lock:
            ev = self._cancel.get(track)
            th = self._threads.get(track)
        if ev is not None:
            ev.set()
        if wait and th is not None:
            th.join(timeout=5.0)

    def start(self, req: dict) -> None:
        track = int(req["track"])
        self.cancel(track)
        ev = threading.Event()
        th = threading.Thread(target=self._run, args=(req, ev), name=f"feed-track{track + 1:02d}", daemon=True)
        with self._lock:
            self._cancel[track] = ev
            self._threads[track] = th
        th.start()

    def _run(self, req: dict, cancel: threading.Event) -> None:
        track = int(req["track"])
        feed = RingFeed(self.rings.tracks[track], track, int(req["epoch"]), int(req["rate"]),
                        int(req.get("prefill_frames", 0)), self.emit, req, self.crumb[track : track + 1],
                        stream_id=req.get("id"), resume_from=req.get("resume_from"))
        with self._lock:
            self._feeds[track] = feed
        try:
            if req.get("op") == "relay":
                from jackgen.generators.relay import relay_chunks

                chunks = relay_chunks(self.redis, str(req["key"]), feed.rate, self.relay_counters, cancel.is_set)
            else:
                chunks = file_chunks(req["path"], feed.rate, feed.resume_from)
            state = feed.run(chunks, cancel.is_set)
            if req.get("op") == "relay":
                self.emit({"event": "relay_counters", **self.relay_counters, "state": state})
        finally:
            with self._lock:
                if self._feeds.get(track) is feed:
                    del self._feeds[track]


class SocketLink:
    """The feeder's end of its link to control: a unix socket, one client (the newest) at a time.

    Events go to the connected client; while none is (control restarting), the last 2 000 wait
    and go out first on the next connection, then a hello saying what is being streamed."""

    def __init__(self, path: Path, feeder_state) -> None:
        self.path = path
        self.feeder_state = feeder_state  # () -> the hello's "feeds"
        self._conn: socket.socket | None = None
        self._lock = threading.Lock()
        self._backlog: deque[bytes] = deque(maxlen=2000)
        self.done = threading.Event()

    def emit(self, msg: dict) -> None:
        line = (json.dumps(msg, default=str) + "\n").encode()  # an odd value in metadata must not kill us
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.sendall(line)
                    return
                except OSError:
                    self._drop()
            self._backlog.append(line)

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
            self._conn = None

    def serve(self, handle) -> None:
        """Accept control's connections and feed each request line to ``handle`` until it says quit."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(str(self.path))
        os.chmod(self.path, 0o600)
        srv.listen(4)
        srv.settimeout(0.5)
        from jackgen.common.sdnotify import notify

        notify("READY=1")
        last_ping = 0.0
        try:
            while not self.done.is_set():
                if time.monotonic() - last_ping >= 2.0:
                    notify("WATCHDOG=1")
                    last_ping = time.monotonic()
                try:
                    conn, _ = srv.accept()
                except TimeoutError:
                    continue
                conn.settimeout(None)
                with self._lock:
                    self._drop()
                    try:
                        while self._backlog:
                            conn.sendall(self._backlog[0])
                            self._backlog.popleft()
                        conn.sendall((json.dumps({"event": "hello", "pid": os.getpid(),
                                                  "feeds": self.feeder_state()}) + "\n").encode())
                    except OSError:
                        conn.close()
                        continue
                    self._conn = conn
                threading.Thread(target=self._read, args=(conn, handle), name="control-link", daemon=True).start()
        finally:
            srv.close()
            try:
                self.path.unlink()
            except OSError:
                pass

    def _read(self, conn: socket.socket, handle) -> None:
        with conn.makefile("rb") as f:
            for raw in f:
                line = raw.strip()
                if not line:
                    continue
                try:
                    req = json.loads(line)
                    if not isinstance(req, dict):
                        raise ValueError("request must be a JSON object")
                    if not handle(req):
                        self.done.set()
                        return
                except (ValueError, KeyError, TypeError) as e:
                    self.emit({"event": "error", "message": f"bad request: {e}"})
        with self._lock:
            if self._conn is conn:
                self._drop()


def _watch_rings(rings: InstanceRings) -> None:
    while True:
        time.sleep(1.0)
        if rings.replaced():
            log.warning("control has made new rings; restarting to attach them")
            os._exit(EXIT_RINGS_REPLACED)


def run_feeder(instance: str, redis_url: str | None, sessions_dir: str | None, socket_path: str) -> int:
    """Stream files into track rings for whoever connects to ``socket_path``; with ``redis_url``,
    also be the relay: remote workers' audio into the rings, and their uploaded takes into
    ``sessions_dir``."""
    from jackgen.common.proctitle import set_title

    set_title("jackgen: feeder")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    install_from_env("feeder")
    gc.freeze()  # what importing made stays: the collections after plugin loads walk only what came since
    rings = InstanceRings.attach(instance, timeout_s=10.0)
    threading.Thread(target=_watch_rings, args=(rings,), name="rings-watch", daemon=True).start()
    feeder: Feeder | None = None
    link = SocketLink(Path(socket_path), lambda: feeder.feeds() if feeder else [])
    r = lander = None
    if redis_url:
        import redis

        from jackgen.bridge.jobqueue import Keys
        from jackgen.generators.relay import Lander

        r = redis.Redis.from_url(redis_url, socket_timeout=10, socket_connect_timeout=3)
        if sessions_dir:
            lander = Lander(r, Keys(instance), sessions_dir)
            threading.Thread(target=lander.run, name="lander", daemon=True).start()
    feeder = Feeder(rings, link.emit, open_crumb(instance, "feeder", len(rings.tracks), create=False), r)
    log.info("feeder listening on %s", socket_path)
    try:
        link.serve(feeder.handle)
    finally:
        if lander is not None:
            lander.stop.set()
        for t in range(len(rings.tracks)):
            feeder.cancel(t)
    return 0

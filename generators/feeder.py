"""The feeder worker: streams audio files into track rings ahead of playback.

Control starts one (``jackgen feeder``) and talks to it in JSON lines:

    stdin   {"op": "stream", "id", "track" (0-based), "epoch", "path", "rate",
             "prefill_frames", "resume_from" (frames already delivered, or null), chain…}
            {"op": "chain", "track", "change"}   {"op": "cancel", "track"}   {"op": "quit"}
    stdout  the producer events (``jackgen.generators.producer``): {"event": "primed", "id",
            "track", "epoch", "frames"}, then {"event": "stream_end", "state": "eos" |
            "cancelled" | "error", "frames", "message"?}; {"event": "error", "message"} for a
            request it cannot read.

"primed" is sent once ``prefill_frames`` are in the ring (or the whole file is),
so control can tell the engine to start with audio already waiting. Each stream
runs in its own thread, through the one producer loop (``RingFeed``); the ring's
``write_blocking`` sleeps politely while the ring is full.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from jackgen.bridge.crumb import open_crumb
from jackgen.bridge.instance import InstanceRings
from jackgen.common.link import serve_stdin, stdout_emitter
from jackgen.generators.producer import RingFeed, file_chunks

log = logging.getLogger("jackgen.feeder")


class Feeder:
    def __init__(self, rings: InstanceRings, emit, crumb: np.ndarray | None = None) -> None:
        self.rings = rings
        self.emit = emit
        self.crumb = crumb if crumb is not None else np.zeros(len(rings.tracks), dtype=np.int64)  # one word a track
        self._cancel: dict[int, threading.Event] = {}
        self._threads: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()
        self._feeds: dict[int, RingFeed] = {}

    def handle(self, req: dict) -> bool:
        op = req.get("op")
        if op == "stream":
            self.start(req)
        elif op == "chain":  # a change to the plugin chain of a track being fed
            with self._lock:
                feed = self._feeds.get(int(req["track"]))
            stage = feed.stage if feed is not None else None
            if stage is not None:
                stage.submit(req["change"])
        elif op == "cancel":
            self.cancel(int(req["track"]))
        elif op == "quit":
            return False
        else:
            self.emit({"event": "error", "id": req.get("id"), "message": f"unknown op {op!r}"})
        return True

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
            feed.run(file_chunks(req["path"], feed.rate, feed.resume_from), cancel.is_set)
        finally:
            with self._lock:
                if self._feeds.get(track) is feed:
                    del self._feeds[track]


def run_feeder(instance: str) -> int:
    from jackgen.common.proctitle import set_title

    set_title("jackgen: feeder")
    rings = InstanceRings.attach(instance, timeout_s=10.0)
    emit = stdout_emitter()
    feeder = Feeder(rings, emit, open_crumb(instance, "feeder", len(rings.tracks), create=False))
    emit({"event": "ready"})
    serve_stdin(feeder.handle, emit)
    for t in range(len(rings.tracks)):
        feeder.cancel(t)
    return 0

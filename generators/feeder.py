"""The feeder worker: streams audio files into track rings ahead of playback.

Control starts one (``jackgen feeder``) and talks to it in JSON lines:

    stdin   {"op": "stream", "id", "track" (0-based), "epoch", "path", "rate",
             "prefill_frames", "resume_from" (frames already delivered, or null)}
            {"op": "cancel", "track"}          {"op": "quit"}
    stdout  {"event": "primed"|"eos"|"cancelled"|"error", "id", "track", "epoch",
             "frames", "message"?}

"primed" is sent once ``prefill_frames`` are in the ring (or the whole file is),
so control can tell the engine to start with audio already waiting. Each stream
runs in its own thread; the ring's ``write_blocking`` sleeps politely while the
ring is full.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
import soundfile as sf

from jackgen.bridge.crumb import open_crumb
from jackgen.bridge.instance import InstanceRings
from jackgen.dsp.convert import StreamResampler, to_stereo
from jackgen.plugins.chainstage import ChainStage, stage_for
from jackgen.common.link import serve_stdin, stdout_emitter
from jackgen.generators.producer import write_primed

log = logging.getLogger("jackgen.feeder")

CHUNK_FRAMES = 8192


class Feeder:
    def __init__(self, rings: InstanceRings, emit, crumb: np.ndarray | None = None) -> None:
        self.rings = rings
        self.emit = emit
        self.crumb = crumb if crumb is not None else np.zeros(len(rings.tracks), dtype=np.int64)  # one word a track
        self._cancel: dict[int, threading.Event] = {}
        self._threads: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()
        self._stages: dict[int, ChainStage] = {}

    def handle(self, req: dict) -> bool:
        op = req.get("op")
        if op == "stream":
            self.start(req)
        elif op == "chain":  # a change to the plugin chain of a track being fed
            stage = self._stages.get(int(req["track"]))
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
        track, epoch, sid = int(req["track"]), int(req["epoch"]), req.get("id")
        ring = self.rings.tracks[track]
        base = {"id": sid, "track": track, "epoch": epoch}
        written = 0
        primed = False
        stage = None
        try:
            out_rate = int(req["rate"])
            prefill = int(req.get("prefill_frames", 0))
            resume_from = req.get("resume_from")
            stage = stage_for(req, out_rate, self.crumb[track : track + 1])  # built on this thread, which runs it
            if stage is not None:
                self._stages[track] = stage
                prefill = min(prefill, stage.lead or prefill)

            def on_primed(frames: int) -> None:
                self.emit({"event": "primed", "frames": frames, **base})

            with sf.SoundFile(req["path"]) as f:
                rs = StreamResampler(f.samplerate, out_rate)
                if resume_from:
                    f.seek(min(f.frames, int(int(resume_from) * f.samplerate / out_rate)))
                    ring.resume_stream(epoch)
                    written = int(resume_from)
                else:
                    ring.begin_stream(epoch, out_rate)
                while not cancel.is_set():
                    data = f.read(CHUNK_FRAMES, dtype="float32", always_2d=True)
                    last = data.shape[0] < CHUNK_FRAMES
                    out = rs.process(to_stereo(data), last=last)
                    if stage is not None:
                        out = stage.process(out, last=last)
                    written, primed = write_primed(ring, out, written, prefill, primed, on_primed, cancel.is_set,
                                                   stage.max_ahead(ring) if stage else None)
                    if stage is not None:
                        stage.prepare_when_covered(ring)
                    if not primed and last:  # a file shorter than the prefill: all of it is in
                        primed = True
                        on_primed(written)
                    if last:
                        break
            if cancel.is_set():
                ring.end_stream(aborted=True)
                self.emit({"event": "cancelled", "frames": written, **base})
                return
            ring.end_stream()
            self.emit({"event": "eos", "frames": written, **base})
        except Exception as e:  # report, mark the stream aborted so the engine fades out
            log.warning("stream %s on track %d failed: %s", sid, track + 1, e)
            try:
                ring.end_stream(aborted=True)
            except Exception:
                pass
            self.emit({"event": "error", "message": str(e), "frames": written, **base})
        finally:
            with self._lock:
                if stage is not None and self._stages.get(track) is stage:
                    del self._stages[track]


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

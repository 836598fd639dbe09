"""The generator worker: one process per backend (``jackgen worker procedural``, …).

It loads its backend once and keeps it warm, then runs jobs one at a time. Each
chunk a backend yields goes two ways at once:

- into the target track's shared-memory ring (a pump thread per stream, so a
  take renders at full speed while the ring is fed at the engine's pace), and
- into the take file ``sessions/<name>/audio_gen/<take>.wav`` (written as
  ``.<take>.wav.part`` and renamed when complete, with ``<take>.json`` beside it:
  every parameter, the seed, model, device and timings).

Control talks to it in JSON lines (the interface the Redis queue takes over):

    stdin   {"op": "job", "id", "spec": {JobSpec}, "takes": [ids], "session_dir", "rate",
             "stream": {"track" (0-based), "epoch", "prefill_frames"} | null, "queued_at": unix s}
            {"op": "cancel", "id"}   {"op": "stop_stream", "track"}   {"op": "quit"}
    stdout  {"event": "ready", "backend", "info"}   {"event": "fatal", "message"}
            {"event": "started" | "cancelled", "id"}
            {"event": "progress", "id", "fraction", "audio_s"}
            {"event": "done", "id", "takes": [{"take", "path", "json"}], "timings", "info"}
            {"event": "failed", "id", "message"}
            and, for the stream into a track, the producer events (``generators.producer``):
            {"event": "primed", "id", "track", "epoch", "frames"}
            {"event": "stream_end", "id", "track", "epoch", "frames", "state": "eos"|"cancelled"|"error"}
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import socket
import threading
import time
import traceback
from pathlib import Path

import numpy as np
import soundfile as sf

from jackgen.bridge.crumb import open_crumb
from jackgen.common.media import MediaPolicy
from jackgen.generators.backends import Backend, TakeContext, make_backend
from jackgen.generators.job import JobError, JobSpec
from jackgen.common.files import atomic_write_json
from jackgen.common.link import EXIT_UNAVAILABLE, serve_stdin, stdout_emitter
from jackgen.generators.producer import EMPTY, RingFeed

log = logging.getLogger("jackgen.worker")

PROGRESS_EVERY_S = 0.1


class StreamPump:
    """Feeds one stream's chunks into a track ring at the ring's pace, in its own thread, through
    the one producer loop (``jackgen.generators.producer.RingFeed``)."""

    def __init__(self, ring, job_id: str, track: int, epoch: int, rate: int, prefill: int, emit,
                 chain_req: dict | None = None, crumb: np.ndarray | None = None) -> None:
        self.job_id, self.track = job_id, track
        self.feed = RingFeed(ring, track, epoch, rate, prefill, emit, chain_req, crumb, stream_id=job_id)
        self.early: list[dict] = []  # chain changes that came before the chain was built
        self.chunks: collections.deque[np.ndarray | None] = collections.deque()
        self.cv = threading.Condition()
        self.stop = threading.Event()
        self.built = False
        self.thread = threading.Thread(target=self._run, name=f"pump-track{track + 1:02d}", daemon=True)
        self.thread.start()

    def submit_change(self, change: dict) -> None:
        """A chain change from control (stdin thread); held until the pump thread has built the chain."""
        with self.cv:
            if not self.built:
                self.early.append(change)
                return
        if self.feed.stage is not None:
            self.feed.stage.submit(change)

    def put(self, chunk: np.ndarray | None) -> None:
        """Queue a chunk; ``None`` marks the end of the stream."""
        with self.cv:
            self.chunks.append(chunk)
            self.cv.notify()

    def fail(self) -> None:
        self.put(_FAILED)

    def cancel(self, wait: bool = True) -> None:
        self.stop.set()
        with self.cv:
            self.cv.notify()
        if wait:
            self.thread.join(timeout=5.0)

    def _queued(self):
        """The take's chunks as they are made, for the producer loop (the chain is built by then)."""
        with self.cv:
            self.built = True
            early, self.early = self.early, []
        for c in early:
            if self.feed.stage is not None:
                self.feed.stage.submit(c)
        while True:
            with self.cv:
                while not self.chunks and not self.stop.is_set():
                    self.cv.wait(0.1)
                if self.stop.is_set():
                    return
                chunk = self.chunks.popleft()
            if chunk is _FAILED:
                raise RuntimeError("the take failed")
            if chunk is None:
                yield EMPTY, True  # the end: the chain's last frames come out
                return
            yield chunk, False

    def _run(self) -> None:
        self.feed.run(self._queued(), self.stop.is_set)


_FAILED = np.zeros((0, 2), dtype=np.float32)  # queued by the job thread: the take failed (compared by identity)


class TakeWriter:
    """Writes one variation's audio as it arrives; complete files appear only when done."""

    def __init__(self, folder: Path, take: str, rate: int, fmt: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{take}.{fmt}"
        self.part = folder / f".{take}.{fmt}.part"
        subtype = "FLOAT" if fmt == "wav" else "PCM_24"
        self.f = sf.SoundFile(str(self.part), "w", samplerate=rate, channels=2, subtype=subtype,
                              format=fmt.upper())
        self.frames = 0
        self.peak = 0.0

    def write(self, chunk: np.ndarray) -> None:
        self.f.write(chunk)
        self.frames += chunk.shape[0]
        if chunk.size:
            self.peak = max(self.peak, float(np.abs(chunk).max()))

    def finish(self) -> None:
        self.f.close()
        os.replace(self.part, self.path)

    def discard(self) -> None:
        self.f.close()
        self.part.unlink(missing_ok=True)


class Worker:
    def __init__(self, backend: Backend, rings, emit, crumb: np.ndarray | None = None) -> None:
        self.backend = backend
        self.rings = rings
        self.emit = emit
        self.crumb = crumb if crumb is not None else np.zeros(16, dtype=np.int64)  # a word per track
        self.jobs: queue.Queue = queue.Queue()
        self.cancelled: set[str] = set()
        self.current: str | None = None
        self.pumps: dict[int, StreamPump] = {}
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._loop, name="jobs", daemon=True)
        self.thread.start()

    # -------------------------------------------------------------- control side (stdin thread)
    def handle(self, req: dict) -> bool:
        op = req.get("op")
        if op == "job":
            self.jobs.put(req)
        elif op == "cancel":
            jid = str(req.get("id"))
            with self.lock:
                self.cancelled.add(jid)
                pumps = [p for p in self.pumps.values() if p.job_id == jid]
            for p in pumps:
                p.cancel(wait=False)
        elif op == "stop_stream":
            self.stop_stream(int(req["track"]))
        elif op == "chain":  # a change to the plugin chain of a track this worker feeds
            with self.lock:
                p = self.pumps.get(int(req["track"]))
            if p is not None:
                p.submit_change(req["change"])
        elif op == "quit":
            return False
        else:
            self.emit({"event": "error", "message": f"unknown op {op!r}"})
        return True

    def stop_stream(self, track: int) -> None:
        with self.lock:
            p = self.pumps.pop(track, None)
        if p is not None:
            p.cancel(wait=True)

    def shutdown(self) -> None:
        self.jobs.put(None)
        with self.lock:
            self.cancelled.add(self.current or "")
            pumps = list(self.pumps.values())
        for p in pumps:
            p.cancel(wait=True)
        self.thread.join(timeout=10.0)

    # -------------------------------------------------------------- job thread
    def _loop(self) -> None:
        while True:
            req = self.jobs.get()
            if req is None:
                return
            jid = str(req.get("id"))
            with self.lock:
                if jid in self.cancelled:
                    self.cancelled.discard(jid)
                    self.emit({"event": "cancelled", "id": jid})
                    continue
                self.current = jid
            try:
                self.run_job(req)
            except Exception as e:  # a bad job never takes the worker down
                log.error("job %s failed: %s\n%s", jid, e, traceback.format_exc())
                self.emit({"event": "failed", "id": jid, "message": str(e) or type(e).__name__})
            finally:
                with self.lock:
                    self.current = None
                    self.cancelled.discard(jid)

    def run_job(self, req: dict) -> None:
        jid = str(req["id"])
        t_start = time.time()
        t0 = time.perf_counter()
        spec = JobSpec(**req["spec"])
        rate = int(req["rate"])
        session_dir = Path(req["session_dir"])
        takes = list(req["takes"])
        audio_dir = session_dir / "audio_gen"
        self.emit({"event": "started", "id": jid})
        stream = req.get("stream")
        pump = None
        if stream is not None and self.rings is not None:
            t = int(stream["track"])
            self.stop_stream(t)
            pump = StreamPump(self.rings.tracks[t], jid, t, int(stream["epoch"]), rate,
                              int(stream.get("prefill_frames", 0)), self.emit, stream, self.crumb[t : t + 1])
            with self.lock:
                self.pumps[t] = pump

        def should_stop() -> bool:
            return jid in self.cancelled

        last_progress = [0.0]
        audio_frames = [0]

        def progress(fraction: float) -> None:
            now = time.perf_counter()
            if now - last_progress[0] >= PROGRESS_EVERY_S or fraction >= 1.0:
                last_progress[0] = now
                self.emit({"event": "progress", "id": jid, "fraction": round(float(fraction), 4),
                           "audio_s": round(audio_frames[0] / rate, 3)})

        media = MediaPolicy.from_dict(req["media"]) if isinstance(req.get("media"), dict) else None
        ctx = TakeContext(rate, session_dir, takes, should_stop, {}, progress, media)
        writers: dict[int, TakeWriter] = {}
        first_audio_s = None
        try:
            for k, chunk in self.backend.generate(spec, ctx):
                if should_stop():
                    break
                chunk = np.ascontiguousarray(chunk, dtype=np.float32)
                if k not in writers:
                    writers[k] = TakeWriter(audio_dir, takes[k], rate, spec.output_format)
                writers[k].write(chunk)
                if k == 0:
                    audio_frames[0] += chunk.shape[0]
                    if first_audio_s is None and chunk.shape[0]:
                        first_audio_s = time.perf_counter() - t0
                    if pump is not None:
                        pump.put(chunk)
        except BaseException:
            for w in writers.values():
                w.discard()
            if pump is not None:
                pump.fail()
            raise
        if should_stop():
            for w in writers.values():
                w.discard()
            if pump is not None:
                pump.cancel(wait=False)
            self.emit({"event": "cancelled", "id": jid})
            return
        if pump is not None:
            pump.put(None)
        done_s = time.perf_counter() - t0
        queued_at = float(req.get("queued_at") or t_start)
        timings = {
            "queued_at": queued_at, "started_at": t_start, "queue_wait_s": round(t_start - queued_at, 4),
            "first_audio_s": None if first_audio_s is None else round(first_audio_s, 4),
            "ttfa_s": None if first_audio_s is None else round(t_start - queued_at + first_audio_s, 4),
            "done_s": round(done_s, 4), "total_s": round(t_start - queued_at + done_s, 4),
        }
        out = []
        for k, take in enumerate(takes):
            w = writers.get(k)
            if w is None:
                raise JobError(f"the {spec.backend} backend produced no audio for take {take}")
            w.finish()
            seconds = w.frames / rate
            meta = {
                "take": take, "job": jid, "variation": k + 1, "variations": len(takes),
                "prompt": spec.prompt, "backend": spec.backend,
                "seed": ctx.info["seeds"][k] if "seeds" in ctx.info else (spec.seed or 0) + k,
                "params": spec.to_dict(), "sample_rate": rate, "channels": 2, "frames": w.frames,
                "seconds": round(seconds, 4), "peak_dbfs": round(20 * np.log10(max(w.peak, 1e-9)), 2),
                "file": w.path.name, "timings": {**timings, "realtime_factor": round(seconds / done_s, 2) if done_s else None},
                "host": socket.gethostname(), "worker_pid": os.getpid(), **self.backend.describe(),
                **{k2: v for k2, v in ctx.info.items() if k2 not in ("stems", "seeds")},
            }
            if "stems" in ctx.info and k < len(ctx.info["stems"]):
                meta["stems"] = ctx.info["stems"][k]
            json_path = audio_dir / f"{take}.json"
            atomic_write_json(json_path, meta)
            out.append({"take": take, "path": str(w.path), "json": str(json_path), "seconds": round(seconds, 4)})
        progress(1.0)
        self.emit({"event": "done", "id": jid, "takes": out, "timings": timings,
                   "info": {**self.backend.describe(), **{k2: v for k2, v in ctx.info.items() if k2 != "stems"}}})


def run_worker(backend_name: str, instance: str | None, options: dict | None = None) -> int:
    from jackgen.common.proctitle import set_title

    set_title(f"jackgen: worker {backend_name}")
    emit = stdout_emitter()
    try:
        backend = make_backend(backend_name, **(options or {}))
        backend.load()
    except Exception as e:
        emit({"event": "fatal", "backend": backend_name, "message": str(e) or type(e).__name__})
        log.error("worker %s cannot start: %s", backend_name, e)
        return EXIT_UNAVAILABLE
    rings = None
    if instance:
        from jackgen.bridge.instance import InstanceRings

        rings = InstanceRings.attach(instance, timeout_s=10.0)
    crumb = open_crumb(instance, f"worker-{backend_name}", 16, create=False) if instance else None
    worker = Worker(backend, rings, emit, crumb)
    emit({"event": "ready", "backend": backend_name, "pid": os.getpid(), "info": backend.describe()})
    serve_stdin(worker.handle, emit)
    worker.shutdown()
    backend.close()
    return 0

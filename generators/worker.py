"""Running generation jobs: a backend's chunks into take files and, live, into a track's ring.

One ``JobRunner`` per worker process keeps its backends warm and runs one job at a time
(``jackgen.generators.queueworker`` takes the jobs from the Redis queue). Each chunk a backend
yields goes two ways at once:

- into the target track's shared-memory ring (a pump thread per stream, so a take renders at full
  speed while the ring is fed at the engine's pace; the pump outlives the job while the take plays), and
- into the take file ``sessions/<name>/audio_gen/<take>.wav``, written as ``.<take>.<fence>.wav.part``,
  fsynced, and renamed when complete (the fence in the name: a worker that lost its claim never
  writes over another's part file), with ``<take>.json`` beside it: every parameter, the seed,
  model, device and timings.

Events go out through ``publish(event, fields)``: "started" is the queue's, then "first-audio",
"progress" (at most every 0.1 s) and the result the caller publishes with its ack. The pumps speak
the producer vocabulary (``generators.producer``): "primed", "stream_end".
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from jackgen.common.files import DiskFull, atomic_write_json, fsync_dir, write_failure
from jackgen.common.media import MediaPolicy
from jackgen.generators.backends import Backend, TakeContext
from jackgen.generators.job import JobError, JobSpec
from jackgen.generators.producer import EMPTY, RingFeed

log = logging.getLogger("jackgen.worker")

PROGRESS_EVERY_S = 0.1


class LostClaim(Exception):
    """Another worker holds this job now: stop, publish nothing, keep no file."""


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


_FAILED = np.zeros((0, 2), dtype=np.float32)  # queued by the job thread: the take failed (compared by identity)


class TakeWriter:
    """Writes one variation's audio as it arrives; the complete file appears only when done."""

    def __init__(self, folder: Path, take: str, rate: int, fmt: str, fence: int = 0) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.path = folder / f"{take}.{fmt}"
        self.part = folder / f".{take}.{fence}.{fmt}.part"
        subtype = "FLOAT" if fmt == "wav" else "PCM_24"
        self.f = sf.SoundFile(str(self.part), "w", samplerate=rate, channels=2, subtype=subtype,
                              format=fmt.upper())
        self.frames = 0
        self.peak = 0.0

    def write(self, chunk: np.ndarray) -> None:
        try:
            self.f.write(chunk)
        except (OSError, sf.LibsndfileError) as e:
            raise DiskFull(write_failure(self.path, e)) from None
        self.frames += chunk.shape[0]
        if chunk.size:
            self.peak = max(self.peak, float(np.abs(chunk).max()))

    def close(self) -> None:
        """Complete the file and put it on disk (fsync) under its part name."""
        try:
            self.f.close()
        except (OSError, sf.LibsndfileError) as e:
            raise DiskFull(write_failure(self.path, e)) from None
        fd = os.open(self.part, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def commit(self) -> None:
        os.replace(self.part, self.path)
        fsync_dir(self.folder)

    def discard(self) -> None:
        if not self.f.closed:
            self.f.close()
        self.part.unlink(missing_ok=True)


@dataclass
class JobOrder:
    """One attempt at one job, as the runner needs it (parsed and checked by the caller)."""

    id: str
    spec: JobSpec
    takes: list[str]
    session_dir: Path
    rate: int
    media: MediaPolicy | None = None
    fence: int = 0
    queued_at: float = 0.0
    track: int | None = None  # 0-based
    # control's stream grant: grant(block_s) -> the grant, None (no stream), or False (not yet; block_s=None
    # waits until its timeout)
    grant: Callable[[float | None], dict | None | bool] = lambda block_s: None
    check: Callable[[], None] = lambda: None  # raises LostClaim when the claim is gone
    extra: dict = field(default_factory=dict)


class JobRunner:
    def __init__(self, backends: dict[str, Backend], emit: Callable[[dict], None], rings_for=None,
                 crumb: np.ndarray | None = None, max_speed: float = 0.0, relay_for=None) -> None:
        self.backends = backends
        self.relay_for = relay_for  # (order, grant) -> a sender with the pump's put/fail/cancel
        self.emit = emit  # stream events (the pumps')
        self.rings_for = rings_for  # grant -> the instance's rings (attached), or None
        self.crumb = crumb if crumb is not None else np.zeros(16, dtype=np.int64)  # a word per track
        self.max_speed = max_speed  # > 0: render at most this many times real time (CPU left for the engine)
        self.pumps: dict[int, StreamPump] = {}
        self.lock = threading.Lock()

    # ------------------------------------------------------------ streams (any thread)
    def stop_stream(self, track: int) -> None:
        with self.lock:
            p = self.pumps.pop(track, None)
        if p is not None:
            p.cancel(wait=True)

    def chain_change(self, track: int, change: dict) -> None:
        with self.lock:
            p = self.pumps.get(track)
        if p is not None:
            p.submit_change(change)

    def cancel_streams_of(self, jid: str) -> None:
        with self.lock:
            pumps = [p for p in self.pumps.values() if p.job_id == jid]
        for p in pumps:
            p.cancel(wait=False)

    def shutdown(self) -> None:
        with self.lock:
            pumps = list(self.pumps.values())
            self.pumps.clear()
        for p in pumps:
            p.cancel(wait=True)

    def _pump_for(self, order: JobOrder, grant: dict) -> StreamPump | None:
        if grant.get("relay_key") and self.relay_for is not None:  # through Redis to the engine host's relay
            return self.relay_for(order, grant)
        rings = self.rings_for(grant) if self.rings_for is not None else None
        if rings is None:
            return None
        t = int(grant["track"])
        self.stop_stream(t)
        pump = StreamPump(rings.tracks[t], order.id, t, int(grant["epoch"]), order.rate,
                          int(grant.get("prefill_frames", 0)), self.emit, grant, self.crumb[t : t + 1])
        with self.lock:
            self.pumps[t] = pump
        return pump

    # ------------------------------------------------------------ one job (the job thread)
    def run(self, order: JobOrder, publish: Callable[[str, dict], None], should_stop: Callable[[], bool]) -> dict:
        """Run ``order``; returns the result fields (``outputs``, ``timings``, ``info``) with the takes
        closed under their part names, ready for ``commit``; ``{"cancelled": True}`` if it was cancelled.
        Raises on failure (``JobError``: the request cannot work; anything else: may work on a retry)."""
        spec = order.spec
        backend = self.backends.get(spec.backend)
        if backend is None:
            raise JobError(f"this worker does not run the {spec.backend} backend")
        t_start = time.time()
        t0 = time.perf_counter()
        rate = order.rate
        audio_dir = order.session_dir / "audio_gen"
        pump = None
        waiting = order.track is not None  # for control's stream grant; chunks are kept until it comes
        held: list[np.ndarray] = []

        def attach(block_s: float) -> None:
            nonlocal pump, waiting
            grant = order.grant(block_s)
            if grant is False:  # not yet
                return
            waiting = False
            if grant is not None:
                pump = self._pump_for(order, grant)
                if pump is not None:
                    for c in held:
                        pump.put(c)
            held.clear()

        if waiting:
            attach(0.0)
        last_progress = [0.0]
        audio_frames = [0]

        def progress(fraction: float) -> None:
            now = time.perf_counter()
            if now - last_progress[0] >= PROGRESS_EVERY_S or fraction >= 1.0:
                last_progress[0] = now
                publish("progress", {"progress": round(float(fraction), 4),
                                     "audio_s": round(audio_frames[0] / rate, 3)})

        ctx = TakeContext(rate, order.session_dir, order.takes, should_stop, {}, progress, order.media)
        writers: dict[int, TakeWriter] = {}
        first_audio_s = None
        try:
            for k, chunk in backend.generate(spec, ctx):
                if should_stop():
                    break
                chunk = np.ascontiguousarray(chunk, dtype=np.float32)
                if k not in writers:
                    writers[k] = TakeWriter(audio_dir, order.takes[k], rate, spec.output_format, order.fence)
                writers[k].write(chunk)
                if k == 0:
                    audio_frames[0] += chunk.shape[0]
                    if first_audio_s is None and chunk.shape[0]:
                        first_audio_s = time.perf_counter() - t0
                        publish("first-audio", {"first_audio_s": round(first_audio_s, 4)})
                    if waiting:
                        held.append(chunk)
                        attach(0.0)
                    elif pump is not None:
                        pump.put(chunk)
                    if self.max_speed > 0:
                        self._throttle(t0, audio_frames[0] / rate / self.max_speed, should_stop)
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
            return {"cancelled": True, "writers": {}}
        if waiting:
            attach(None)  # rendered before the grant came: wait for it (up to its timeout), then stream
        if pump is not None:
            pump.put(None)
        done_s = time.perf_counter() - t0
        queued_at = float(order.queued_at or t_start)
        timings = {
            "queued_at": queued_at, "started_at": t_start, "queue_wait_s": round(t_start - queued_at, 4),
            "first_audio_s": None if first_audio_s is None else round(first_audio_s, 4),
            "ttfa_s": None if first_audio_s is None else round(t_start - queued_at + first_audio_s, 4),
            "done_s": round(done_s, 4), "total_s": round(t_start - queued_at + done_s, 4),
        }
        for k, take in enumerate(order.takes):
            if k not in writers:
                for w in writers.values():
                    w.discard()
                raise JobError(f"the {spec.backend} backend produced no audio for take {take}")
        for w in writers.values():
            w.close()
        progress(1.0)
        info = {**backend.describe(), **{k2: v for k2, v in ctx.info.items() if k2 != "stems"}}
        return {"writers": writers, "timings": timings, "info": info, "ctx_info": ctx.info, "done_s": done_s}

    def commit(self, order: JobOrder, result: dict) -> list[dict]:
        """Rename the takes into place and write their JSON (after the claim is checked once more)."""
        spec, rate, writers = order.spec, order.rate, result["writers"]
        audio_dir = order.session_dir / "audio_gen"
        ctx_info, timings, done_s = result["ctx_info"], result["timings"], result["done_s"]
        backend = self.backends[spec.backend]
        out = []
        for k, take in enumerate(order.takes):
            w = writers[k]
            w.commit()
            for stale in audio_dir.glob(f".{take}.*.{spec.output_format}.part"):  # a killed attempt's
                stale.unlink(missing_ok=True)
            seconds = w.frames / rate
            meta = {
                "take": take, "job": order.id, "variation": k + 1, "variations": len(order.takes),
                "prompt": spec.prompt, "backend": spec.backend,
                "seed": ctx_info["seeds"][k] if "seeds" in ctx_info else (spec.seed or 0) + k,
                "params": spec.to_dict(), "sample_rate": rate, "channels": 2, "frames": w.frames,
                "seconds": round(seconds, 4), "peak_dbfs": round(20 * np.log10(max(w.peak, 1e-9)), 2),
                "file": w.path.name,
                "timings": {**timings, "realtime_factor": round(seconds / done_s, 2) if done_s else None},
                "host": socket.gethostname(), "worker_pid": os.getpid(), **backend.describe(),
                **{k2: v for k2, v in ctx_info.items() if k2 not in ("stems", "seeds", "sections", "instrument_states")}, **order.extra,
            }
            for per_take in ("stems", "sections"):  # one list per variation: this take's
                if per_take in ctx_info and k < len(ctx_info[per_take]):
                    meta[per_take] = ctx_info[per_take][k]
            json_path = audio_dir / f"{take}.json"
            atomic_write_json(json_path, meta)
            out.append({"take": take, "path": str(w.path), "json": str(json_path), "seconds": round(seconds, 4)})
        fsync_dir(audio_dir)
        return out

    def discard_all(self, order: JobOrder) -> None:
        """After an attempt that failed before it had writers to hand back: its part files go."""
        audio_dir = order.session_dir / "audio_gen"
        for take in order.takes:
            for part in audio_dir.glob(f".{take}.*.part"):
                part.unlink(missing_ok=True)

    def discard(self, result: dict, committed: bool = False) -> None:
        """Remove what a failed attempt wrote (with ``committed``, also takes already renamed into place)."""
        for w in (result.get("writers") or {}).values():
            w.discard()
            if committed:
                w.path.unlink(missing_ok=True)
                w.path.with_suffix(".json").unlink(missing_ok=True)

    @staticmethod
    def _throttle(t0: float, due_s: float, should_stop) -> None:
        while not should_stop():
            ahead = due_s - (time.perf_counter() - t0)
            if ahead <= 0:
                return
            time.sleep(min(ahead, 0.05))

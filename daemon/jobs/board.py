"""Generation jobs on the control side: validation, queue, dispatch to local workers, events.

``JobBoard`` is the one interface OSC, HTTP and the CLI submit through. Today it
queues jobs in memory (by priority, then arrival) and hands them one at a time
to a local worker process per backend; the Redis issue replaces the queue behind
the same ``submit`` / ``cancel`` / ``get`` / ``subscribe`` calls.

A job with a track claims it when it starts (not when queued, so what plays
keeps playing while the job waits): the current stream is stopped, a new epoch
begins, and the engine is told to play as soon as the worker reports the first
audio in the ring ("primed"). A worker that dies fails its job, and control
marks the track's stream aborted so the engine fades that track to silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from jackgen.common.children import ChildProcess, self_argv
from jackgen.common.errors import JackgenError, Unavailable
from jackgen.common.link import EXIT_UNAVAILABLE
from jackgen.common.media import MediaPolicy
from jackgen.daemon.config import Config
from jackgen.generators.job import BACKENDS, PRIORITIES, JobError, JobSpec, new_job_id

log = logging.getLogger("jackgen.jobs")

FINAL = ("done", "failed", "cancelled")


class TrackHost(Protocol):
    """What the job board needs of control: the tracks a job streams into, and its files."""

    cfg: Config
    config_path: str | None
    session_dir: Path
    media: MediaPolicy
    sample_rate: int

    def child(self, role: str, argv: list[str], **kw: Any) -> ChildProcess: ...
    async def claim_track(self, t: int, producer: Any, source: str, stream_id: str) -> int: ...
    def chain_request(self, t: int) -> dict: ...
    def on_stream_event(self, producer: Any, msg: dict) -> None: ...
    def check_crumb(self, role: str, code: int | None) -> None: ...
    def abort_streams_of(self, worker: Any) -> None: ...


@dataclass
class Job:
    id: str
    spec: JobSpec
    takes: list[str]
    submitted_at: float = field(default_factory=time.time)
    status: str = "queued"
    progress: float = 0.0
    audio_s: float = 0.0
    error: str | None = None
    outputs: list[dict] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    epoch: int = 0
    events: list[dict] = field(default_factory=list)
    finished: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    listeners: set = field(default_factory=set, repr=False)
    on_final: list = field(default_factory=list, repr=False)

    def public(self) -> dict:
        s = self.spec
        return {
            "job_id": self.id, "status": self.status, "progress": round(self.progress, 4),
            "audio_s": self.audio_s, "backend": s.backend, "prompt": s.prompt, "duration": s.duration_s,
            "seed": s.seed, "variations": s.variations, "track": None if s.track is None else s.track + 1,
            "priority": s.priority, "takes": self.takes, "outputs": self.outputs, "error": self.error,
            "timings": {"submitted_at": self.submitted_at, **self.timings}, "metadata": self.info,
            "params": s.to_dict(),
        }


class WorkerLink:
    """One backend's worker process and what control knows of it."""

    def __init__(self, board: JobBoard, backend: str) -> None:
        self.board = board
        self.backend = backend
        self.child: ChildProcess | None = None
        self.ready = asyncio.Event()
        self.fatal: str | None = None
        self.info: dict = {}
        self.current: Job | None = None

    def start(self) -> None:
        c = self.board.control
        args = ["worker", self.backend, "--instance", c.cfg.instance]
        if c.config_path:
            args += ["--config", c.config_path]
        self.child = c.child(f"worker {self.backend}", self_argv(*args), stdin=True, on_line=self._on_line,
                             on_exit=self._on_exit, no_restart_codes=(EXIT_UNAVAILABLE,))
        self.child.start()

    async def send(self, msg: dict) -> None:
        assert self.child is not None
        await self.child.send(msg)

    async def _on_line(self, line: str) -> None:
        if not line:
            return
        try:
            msg = json.loads(line)
        except ValueError:
            log.warning("worker %s: unreadable line %r", self.backend, line[:200])
            return
        ev = msg.get("event")
        if ev == "ready":
            self.fatal = None
            self.info = msg.get("info") or {}
            self.ready.set()
            log.info("worker %s ready (pid %s)", self.backend, msg.get("pid"))
            return
        if ev == "fatal":
            self.fatal = msg.get("message") or "the worker cannot run"
            log.error("worker %s cannot run: %s", self.backend, self.fatal)
            self.ready.set()  # wakes the dispatcher, which fails the job with this message
            return
        if ev in ("primed", "stream_end"):
            self.board.control.on_stream_event(self, msg)
            return
        job = self.board.jobs.get(str(msg.get("id")))
        if job is not None:
            self.board.on_worker_event(job, msg)

    async def _on_exit(self, child: ChildProcess, code: int) -> None:
        self.ready.clear()
        if code == EXIT_UNAVAILABLE and self.fatal:
            self.ready.set()
        why = f"the {self.backend} worker died (exit code {code})" if code >= 0 else \
            f"the {self.backend} worker was killed (signal {-code})"
        self.board.control.check_crumb(f"worker-{self.backend}", code)
        self.board.control.abort_streams_of(self)
        job = self.current
        if job is not None and job.status not in FINAL:
            self.board.finish(job, "failed", error=why)


class JobBoard:
    def __init__(self, control: TrackHost) -> None:
        self.control = control
        self.listeners: list[Callable[[Job, dict], None]] = []  # every job event (the OSC front end's notify)
        self.jobs: dict[str, Job] = {}
        self.workers: dict[str, WorkerLink] = {}
        self._queues: dict[str, list[tuple[int, int, str]]] = {b: [] for b in BACKENDS}
        self._wake: dict[str, asyncio.Event] = {b: asyncio.Event() for b in BACKENDS}
        self._seq = itertools.count()
        self._tasks: list[asyncio.Task] = []
        self.max_kept = control.cfg.generators.max_jobs_kept

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        for b in self.control.cfg.generators.workers:
            self.worker(b)
        for b in BACKENDS:
            self._tasks.append(asyncio.create_task(self._dispatch(b), name=f"jobs-{b}"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for w in self.workers.values():
            if w.child:
                with contextlib.suppress(Exception):
                    await w.send({"op": "quit"})
                await w.child.stop()

    def worker(self, backend: str) -> WorkerLink:
        w = self.workers.get(backend)
        if w is None:
            w = self.workers[backend] = WorkerLink(self, backend)
            w.start()
        return w

    # ------------------------------------------------------------ API
    def submit(self, request: dict, on_final=None) -> Job:
        gc = self.control.cfg.generators
        try:
            spec = JobSpec.from_dict(request, default_backend=gc.default_backend, max_duration_s=gc.max_duration_s)
        except JobError as e:
            raise JackgenError(str(e)) from None
        spec = self._check_files(spec)
        if spec.seed is None:
            spec = spec.with_(seed=random.randrange(0, 2**31 - spec.variations))
        if spec.backend not in gc.allowed_backends():
            raise JackgenError(f"the {spec.backend} backend is turned off here (generators.workers / "
                               f"generators.musicgen_enabled in the config)")
        w = self.workers.get(spec.backend)
        if w is not None and w.fatal:  # it said it cannot load: it is not restarted either
            raise Unavailable(f"the {spec.backend} backend cannot run here: {w.fatal}")
        jid = new_job_id()
        takes = [jid] if spec.variations == 1 else [f"{jid}-{k + 1}" for k in range(spec.variations)]
        job = Job(jid, spec, takes)
        if on_final is not None:
            job.on_final.append(on_final)
        self.jobs[jid] = job
        self._trim()
        heapq.heappush(self._queues[spec.backend], (PRIORITIES[spec.priority], next(self._seq), jid))
        self._wake[spec.backend].set()
        self._event(job, {"event": "queued"})
        log.info("job %s queued: %s %.1f s %r seed %s%s", jid, spec.backend, spec.duration_s, spec.prompt[:60],
                 spec.seed, "" if spec.track is None else f" -> track {spec.track + 1}")
        return job

    def _check_files(self, spec: JobSpec) -> JobSpec:
        """Files a job names, through the media policy (the workers apply it again): inside the
        session folder, control.media_dirs or, for SoundFonts, the system's SoundFont folders."""
        media = self.control.media
        changes = {}
        for name, what in (("midi", "MIDI file"), ("soundfont", "SoundFont"), ("melody", "melody file")):
            raw = getattr(spec, name)
            if raw is not None:
                changes[name] = str(media.resolve(raw, what, kind=name, field_name=name))
        return spec.with_(**changes) if changes else spec

    def get(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise JackgenError(f"no job {job_id!r} (jobs are kept for the last {self.max_kept} submissions)",
                               status=404)
        return job

    async def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job.status in FINAL:
            return job
        q = self._queues[job.spec.backend]
        for i, item in enumerate(q):
            if item[2] == job_id:
                q.pop(i)
                heapq.heapify(q)
                self.finish(job, "cancelled")
                return job
        w = self.workers.get(job.spec.backend)
        if w is not None:
            with contextlib.suppress(JackgenError):
                await w.send({"op": "cancel", "id": job_id})
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(job.finished.wait(), 5.0)
        return job

    def queue_length(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def summary(self) -> list[dict]:
        active = [j for j in self.jobs.values() if j.status not in FINAL]
        return [{"job_id": j.id, "status": j.status, "backend": j.spec.backend, "progress": round(j.progress, 3),
                 "track": None if j.spec.track is None else j.spec.track + 1} for j in active]

    def subscribe(self, job: Job) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue(maxsize=1000)
        for e in job.events:
            q.put_nowait(e)
        job.listeners.add(q)
        return q

    # ------------------------------------------------------------ dispatch
    async def _dispatch(self, backend: str) -> None:
        q, wake = self._queues[backend], self._wake[backend]
        while True:
            if not q:
                wake.clear()
                await wake.wait()
                continue
            _, _, jid = heapq.heappop(q)
            job = self.jobs.get(jid)
            if job is None or job.status in FINAL:
                continue
            try:
                await self._run(job)
            except asyncio.CancelledError:
                raise
            except JackgenError as e:
                self.finish(job, "failed", error=str(e))
            except Exception as e:
                log.exception("job %s could not be dispatched", jid)
                self.finish(job, "failed", error=f"internal error: {e}")

    async def _run(self, job: Job) -> None:
        c = self.control
        w = self.worker(job.spec.backend)
        try:
            await asyncio.wait_for(w.ready.wait(), c.cfg.generators.worker_start_timeout_s)
        except asyncio.TimeoutError:
            raise Unavailable(f"the {job.spec.backend} worker did not start within "
                              f"{c.cfg.generators.worker_start_timeout_s:.0f} s") from None
        if w.fatal:
            raise Unavailable(f"the {job.spec.backend} backend cannot run here: {w.fatal}")
        stream = None
        t = job.spec.track
        if t is not None:
            if not c.sample_rate:
                raise Unavailable("the engine is not running (no sample rate): cannot stream to a track")
            job.epoch = await c.claim_track(t, producer=w, source=f"job {job.id}", stream_id=job.id)
            stream = {"track": t, "epoch": job.epoch,
                      "prefill_frames": int(c.cfg.generators.prefill_ms * 1e-3 * c.sample_rate),
                      **c.chain_request(t)}
        rate = c.sample_rate or 48000
        w.current = job
        job.status = "running"
        try:
            await w.send({"op": "job", "id": job.id, "spec": job.spec.to_dict(), "takes": job.takes,
                          "session_dir": str(c.session_dir), "media": c.media.to_dict(), "rate": rate, "stream": stream,
                          "queued_at": job.submitted_at})
            self._event(job, {"event": "dispatched", "worker_pid": w.child.pid if w.child else None})
            await job.finished.wait()
        finally:
            w.current = None

    # ------------------------------------------------------------ worker events
    def on_worker_event(self, job: Job, msg: dict) -> None:
        ev = msg.get("event")
        if job.status in FINAL:
            return
        if ev == "started":
            job.status = "running"
            self._event(job, {"event": "started"})
        elif ev == "progress":
            job.progress = float(msg.get("fraction", 0.0))
            job.audio_s = float(msg.get("audio_s", 0.0))
            self._event(job, {"event": "progress", "progress": job.progress, "audio_s": job.audio_s})
        elif ev == "done":
            job.outputs = msg.get("takes") or []
            job.timings.update(msg.get("timings") or {})
            job.info = msg.get("info") or {}
            job.progress = 1.0
            self.finish(job, "done")
        elif ev == "failed":
            self.finish(job, "failed", error=msg.get("message"))
        elif ev == "cancelled":
            self.finish(job, "cancelled")

    def finish(self, job: Job, status: str, error: str | None = None) -> None:
        if job.status in FINAL:
            return
        job.status = status
        job.error = error
        if status == "failed":
            log.error("job %s failed: %s", job.id, error)
        else:
            log.info("job %s %s%s", job.id, status,
                     f": {', '.join(o['path'] for o in job.outputs)}" if job.outputs else "")
        self._event(job, {"event": status, **({"error": error} if error else {}),
                          **({"outputs": job.outputs} if job.outputs else {})})
        job.finished.set()
        for cb in job.on_final:
            with contextlib.suppress(Exception):
                cb(job)

    def _event(self, job: Job, e: dict) -> None:
        e = {"job_id": job.id, "status": job.status, "t": round(time.time(), 3), **e}
        if e["event"] != "progress" or not job.events or job.events[-1]["event"] != "progress":
            job.events.append(e)
        else:
            job.events[-1] = e  # keep one progress event in the history, not hundreds
        for q in list(job.listeners):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(e)
        for listener in self.listeners:
            with contextlib.suppress(Exception):
                listener(job, e)

    def _trim(self) -> None:
        if len(self.jobs) <= self.max_kept:
            return
        for jid in [j.id for j in self.jobs.values() if j.status in FINAL][: len(self.jobs) - self.max_kept]:
            del self.jobs[jid]


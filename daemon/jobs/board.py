"""Generation jobs on the control side: validation, submission to the Redis queue, events, streams.

``JobBoard`` is what OSC, HTTP, the CLI and MCP submit through. A job is validated here (fields,
files through the media policy, backend allowed), written to Redis (its hash, the queue stream of
its backend and priority) and from then on lives there: workers take it (``jackgen.generators.
queueworker``), so it survives a control restart, and ``get`` reads it back from Redis.

Control follows the events stream: a job for a track that a worker has started gets its stream
grant (control claims the track, opens a new epoch, and tells the worker where to write); the
worker's "primed" starts the track; a worker whose heartbeat stops has its streams faded out.
Every job event goes to the listeners (OSC notify) and to callbacks waiting for a job's end.

With Redis unreachable, submissions answer 503 naming it; playing tracks keep playing; the
board's loops retry every second and pick up where they left off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import redis
import redis.asyncio as aioredis

from jackgen.bridge import jobqueue as Q
from jackgen.common.errors import JackgenError, Unavailable
from jackgen.common.media import MediaPolicy
from jackgen.daemon.config import Config
from jackgen.generators.job import JobError, JobSpec, new_job_id
from jackgen.generators.prompt import interpret_spec

log = logging.getLogger("jackgen.jobs")

FINAL = Q.FINAL
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)


class TrackHost(Protocol):
    """What the job board needs of control: the tracks a job streams into, and its files."""

    cfg: Config
    session: str
    session_dir: Path
    media: MediaPolicy
    sample_rate: int
    rings_id: str

    async def claim_track(self, t: int, producer: Any, source: str, stream_id: str, take: str | None = None) -> int: ...
    def chain_request(self, t: int) -> dict: ...
    def on_stream_event(self, producer: Any, msg: dict) -> None: ...
    def check_crumb(self, role: str, code: int | None) -> None: ...
    def abort_streams_of(self, worker: Any) -> None: ...


@dataclass
class JobView:
    """What listeners and end-of-job callbacks get: the job as its latest event tells it."""

    id: str
    status: str
    progress: float = 0.0
    error: str | None = None


class WorkerHandle:
    """A worker as a producer of track streams: what control sends it goes to its inbox."""

    def __init__(self, board: JobBoard, wid: str) -> None:
        self.board, self.id = board, wid

    async def send(self, msg: dict) -> None:
        try:
            await self.board.r.xadd(self.board.keys.inbox(self.id), {"m": json.dumps(msg)}, maxlen=1000,
                                    approximate=True)
        except REDIS_ERRORS as e:
            raise Unavailable(f"cannot reach worker {self.id}: Redis is not reachable ({e})") from None

    def __repr__(self) -> str:
        return f"worker {self.id}"


def public(job: dict) -> dict:
    """A job hash (decoded) as the API shows it."""
    spec = job.get("spec") or {}
    t = spec.get("track")
    return {
        "job_id": job.get("id"), "status": job.get("status"), "progress": round(float(job.get("progress", 0.0)), 4),
        "audio_s": job.get("audio_s", 0.0), "backend": job.get("backend"), "prompt": spec.get("prompt"),
        "duration": spec.get("duration_s"), "seed": spec.get("seed"), "variations": spec.get("variations"),
        "track": None if t is None else t + 1, "priority": job.get("priority"), "takes": job.get("takes", []),
        "outputs": job.get("outputs", []), "error": job.get("error") or None,
        "timings": {"submitted_at": job.get("submitted_at"), **(job.get("timings") or {}),
                    **({"started_at": job["started_at"]} if "started_at" in job else {}),
                    **({"finished_at": job["finished_at"]} if "finished_at" in job else {})},
        "metadata": job.get("info", {}), "params": spec, "attempts": job.get("attempts", 0),
        "worker": job.get("worker") or None, "dead": job.get("dead") == "1", "session": job.get("session"),
    }


class JobBoard:
    def __init__(self, control: TrackHost, url: str, embedded: bool) -> None:
        self.control = control
        self.url, self.embedded = url, embedded
        self.r = aioredis.Redis.from_url(url, decode_responses=True, socket_timeout=5, socket_connect_timeout=2)
        self.keys = Q.Keys(control.cfg.instance)
        self.scripts = {n: self.r.register_script(src) for n, src in Q.SCRIPTS.items()}
        self.listeners: list[Callable[[JobView, dict], None]] = []  # every job event (the OSC front end's notify)
        self._on_final: dict[str, list[Callable[[JobView], None]]] = {}
        self.handles: dict[str, WorkerHandle] = {}
        self.worker_backends: dict[str, str] = {}  # worker id -> its (first) backend, whose crash crumb it writes
        self.ok = False
        self.error: str | None = "not connected yet"
        self.last_event_id: str | None = None  # the last job event handled (kept for a restarted control)
        self.workers_seen: list[dict] = []
        self.local_host = Q.host_id().split("/")[0]
        self.unavailable: dict[str, str] = {}  # backend -> why its workers cannot run
        self.queue_len = 0
        self.depths: dict[tuple[str, str], int] = {}  # (backend, priority) -> waiting, for /metrics
        self.active: dict[str, dict] = {}  # job id -> its latest state, while not final
        self._tasks: list[asyncio.Task] = []
        self._down_logged = False
        self._stopping = False
        gc = control.cfg.generators
        self.max_kept = gc.max_jobs_kept

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._events_loop(), name="job-events"))
        self._tasks.append(asyncio.create_task(self._monitor_loop(), name="job-monitor"))

    async def stop(self) -> None:
        self._stopping = True  # redis-py may swallow a cancel inside a blocking read: the loops check this too
        for t in self._tasks:
            t.cancel()
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=3.0)
            if stuck:
                log.warning("job board: %s did not stop within 3 s", ", ".join(t.get_name() for t in stuck))
        try:
            await asyncio.wait_for(self.r.aclose(), 3.0)
        except (asyncio.TimeoutError, Exception) as e:
            log.warning("job board: closing the Redis connections: %s", e or "timed out")

    def handle(self, wid: str) -> WorkerHandle:
        h = self.handles.get(wid)
        if h is None:
            h = self.handles[wid] = WorkerHandle(self, wid)
        return h

    def _down(self, e: BaseException) -> Unavailable:
        self.ok, self.error = False, str(e)
        return Unavailable(f"Redis at {self.url} is not reachable ({e}): nothing was queued or changed; "
                           + ("jackgen restarts its embedded redis-server, try again in a moment" if self.embedded
                              else "check the server named in [redis] url"))

    async def ensure_groups(self) -> None:
        for b in self.control.cfg.generators.allowed_backends():
            for p in Q.PRIORITY_NAMES:
                try:
                    await self.r.xgroup_create(self.keys.queue(b, p), b, id="0", mkstream=True)
                except redis.ResponseError as e:
                    if "BUSYGROUP" not in str(e):
                        raise

    # ------------------------------------------------------------ API
    async def submit(self, request: dict, on_final: Callable[[JobView], None] | None = None) -> dict:
        c = self.control
        gc = c.cfg.generators
        try:
            spec = JobSpec.from_dict(request, default_backend=gc.default_backend, max_duration_s=gc.max_duration_s)
        except JobError as e:
            raise JackgenError(str(e)) from None
        spec = self._check_files(spec)
        if spec.instruments:
            spec = await self._check_instruments(spec)
        if spec.seed is None:
            spec = spec.with_(seed=random.randrange(0, 2**31 - spec.variations))
        if spec.backend not in gc.allowed_backends():
            raise JackgenError(f"the {spec.backend} backend is turned off here (generators.workers / "
                               f"generators.musicgen_enabled in the config)")
        jid = new_job_id()
        takes = [jid] if spec.variations == 1 else [f"{jid}-{k + 1}" for k in range(spec.variations)]
        now = time.time()
        k = self.keys
        h = {"id": jid, "backend": spec.backend, "priority": spec.priority, "status": "queued",
             "spec": json.dumps(spec.to_dict()), "takes": json.dumps(takes), "session": c.session,
             "rate": str(c.sample_rate or 48000), "submitted_at": repr(now), "attempts": "0", "fence": "0",
             "track": "" if spec.track is None else str(spec.track), "host": Q.host_id()}
        ev = Q.event_json("queued", jid, "queued", backend=spec.backend, priority=spec.priority)
        try:
            r = await self.scripts["submit"](
                keys=[k.job(jid), k.events, k.job_events(jid), k.queued, k.jobs, k.queue(spec.backend, spec.priority),
                      k.unavailable(spec.backend)],
                args=[jid, now, ev, c.cfg.jobs.max_queued, Q.EVENTS_MAXLEN, Q.JOB_EVENTS_MAXLEN, Q.QUEUE_MAXLEN,
                      *Q.pairs(h)])
        except REDIS_ERRORS as e:
            raise self._down(e) from None
        if r == "full":
            raise Unavailable(f"the job queue is full ({c.cfg.jobs.max_queued} jobs wait; jobs.max_queued): "
                              "try again when some have run")
        if r.startswith("unavailable:"):
            why = r.split(":", 1)[1]
            self.unavailable[spec.backend] = why
            raise Unavailable(f"the {spec.backend} backend cannot run here: {why}")
        if on_final is not None:
            self._on_final.setdefault(jid, []).append(on_final)
        log.info("job %s queued: %s %.1f s %r seed %s%s", jid, spec.backend, spec.duration_s, spec.prompt[:60],
                 spec.seed, "" if spec.track is None else f" -> track {spec.track + 1}")
        it = interpret_spec(spec)
        return {"job_id": jid, "status": "queued", "takes": takes, "seed": spec.seed,
                "interpreted": {**it.to_dict(), "summary": it.summary()}}

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

    async def _check_instruments(self, spec: JobSpec) -> JobSpec:
        """Each instrument a job names is loaded once here, in a child process (an unknown plugin,
        a wrong parameter, an effect, one that crashes: refused before anything is queued); a file
        it is to read comes from the allowed folders."""
        from jackgen.plugins.base import resolve_file_params
        from jackgen.plugins.host import PluginError
        from jackgen.plugins.isolate import instantiate_isolated

        pc = self.control.cfg.plugins
        out = {}
        for stem, inst in spec.instruments.items():
            params = resolve_file_params(inst["params"], lambda v, k, stem=stem: self.control.media.resolve(
                v, f"{stem} instrument's {k}", kind="midi"))
            try:
                info = await asyncio.to_thread(instantiate_isolated, inst["plugin"], params, pc.vst3_dirs,
                                               pc.scan_timeout_s)
            except PluginError as e:
                raise JackgenError(f"instruments.{stem}: {e}") from None
            if not info.get("instrument"):
                raise JackgenError(f"instruments.{stem}: {info['state']['name']} is an effect, not an instrument")
            out[stem] = {"plugin": inst["plugin"], "params": params}
        return spec.with_(instruments=out)

    async def get(self, job_id: str) -> dict:
        if not isinstance(job_id, str) or not Q.JOB_ID_RE.match(job_id):
            raise JackgenError(f"{job_id!r} is not a job id", status=404)
        try:
            h = await self.r.hgetall(self.keys.job(job_id))
        except REDIS_ERRORS as e:
            raise self._down(e) from None
        if not h:
            raise JackgenError(f"no job {job_id!r} (jobs are kept for the last {self.max_kept} submissions)",
                               status=404)
        return public(Q.decode_job(h))

    async def list(self, limit: int = 100, dead: bool = False) -> list[dict]:
        try:
            if dead:
                entries = await self.r.xrevrange(self.keys.dead, count=limit)
                out = []
                for eid, f in entries:
                    jid = f.get("job", "")
                    h = await self.r.hgetall(self.keys.job(jid)) if Q.JOB_ID_RE.match(jid) else {}
                    out.append({"dead_id": eid, "job_id": jid or None, "backend": f.get("backend"),
                                "error": f.get("error"), "attempts": int(f.get("attempts") or 0),
                                "at": float(f.get("t") or 0), **({"job": public(Q.decode_job(h))} if h else {})})
                return out
            ids = await self.r.zrevrange(self.keys.jobs, 0, limit - 1)
            p = self.r.pipeline(transaction=False)
            for jid in ids:
                p.hgetall(self.keys.job(jid))
            rows = await p.execute()
        except REDIS_ERRORS as e:
            raise self._down(e) from None
        return [public(Q.decode_job(h)) for h in reversed(rows) if h]

    async def cancel(self, job_id: str) -> dict:
        job = await self.get(job_id)
        if job["status"] in FINAL:
            return job
        k = self.keys
        ev = Q.event_json("cancelled", job_id, "cancelled")
        try:
            before = await self.scripts["cancel"](keys=[k.job(job_id), k.events, k.job_events(job_id), k.queued],
                                                  args=[job_id, ev, Q.EVENTS_MAXLEN, Q.JOB_EVENTS_MAXLEN])
        except REDIS_ERRORS as e:
            raise self._down(e) from None
        if before == "running" and job.get("worker"):
            with contextlib.suppress(JackgenError):
                await self.handle(job["worker"]).send({"op": "cancel", "job": job_id})
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                job = await self.get(job_id)
                if job["status"] in FINAL:
                    break
                await asyncio.sleep(0.05)
            return job
        return await self.get(job_id)

    async def retry(self, job_id: str) -> dict:
        job = await self.get(job_id)
        k = self.keys
        ev = Q.event_json("queued", job_id, "queued", retried=True)
        try:
            r = await self.scripts["retry"](
                keys=[k.job(job_id), k.events, k.job_events(job_id), k.queued, k.queue(job["backend"], job["priority"]),
                      k.dead], args=[job_id, ev, Q.EVENTS_MAXLEN, Q.JOB_EVENTS_MAXLEN, Q.QUEUE_MAXLEN, time.time()])
        except REDIS_ERRORS as e:
            raise self._down(e) from None
        if int(r) == 0:
            raise JackgenError(f"job {job_id} is {job['status']}: only a failed or cancelled job can be retried",
                               status=409)
        log.info("job %s queued again (retry asked)", job_id)
        return await self.get(job_id)

    async def events(self, job_id: str, last_id: str | None = None) -> AsyncIterator[tuple[str, dict]]:
        """A job's events from after ``last_id`` (all of them without), until its final one."""
        job = await self.get(job_id)
        key = self.keys.job_events(job_id)
        last = last_id if last_id and _entry_id(last_id) else "0-0"
        while True:
            try:
                got = await self.r.xread({key: last}, count=100, block=1000)
            except REDIS_ERRORS:
                await asyncio.sleep(1.0)
                continue
            for eid, e in _events_in(got):
                last = self.last_event_id = eid
                if e is None:
                    continue
                yield eid, e
                if e.get("event") in FINAL:
                    return
            if not got:
                job = await self.get(job_id)
                if job["status"] in FINAL and not await self.r.exists(key):  # its events were trimmed away
                    yield "0-1", {"event": job["status"], "job_id": job_id, "status": job["status"]}
                    return

    async def workers(self) -> list[dict]:
        """The live workers (heartbeat key present) with their registration."""
        k = self.keys
        ids = sorted(await self.r.smembers(k.workers))
        p = self.r.pipeline(transaction=False)
        for wid in ids:
            p.hgetall(k.worker(wid))
            p.pttl(k.alive(wid))
        res = await p.execute()
        out, gone = [], []
        now = time.time()
        for wid, h, ttl in zip(ids, res[::2], res[1::2]):
            if ttl is None or ttl < 0 or not h:
                gone.append(wid)
                continue
            hb = float(h.get("heartbeat") or h.get("started_at") or now)
            self.worker_backends[wid] = (h.get("backends") or "procedural").split(",")[0]
            out.append({"id": wid, "backend": h.get("backends"), "backends": (h.get("backends") or "").split(","),
                        "host": h.get("host"), "pid": int(h.get("pid") or 0), "device": h.get("device") or "cpu",
                        "model": h.get("model"), "remote": h.get("remote") == "1", "busy": h.get("busy") or None,
                        "jobs_done": int(h.get("jobs_done") or 0), "heartbeat_age_s": round(max(0.0, now - hb), 3)})
        if gone:
            p = self.r.pipeline(transaction=False)
            for wid in gone:
                p.srem(k.workers, wid)
                p.delete(k.worker(wid), k.inbox(wid))
            await p.execute()
        return out

    def queue_length(self) -> int:
        return self.queue_len

    def summary(self) -> list[dict]:
        """The jobs not yet over, as their events tell (no Redis call: status must answer with Redis gone)."""
        return list(self.active.values())

    # ------------------------------------------------------------ loops
    async def _monitor_loop(self) -> None:
        """Every second: Redis reachable? the live workers, the queue length, backends that cannot run,
        streams whose worker stopped its heartbeat; every minute, old jobs trimmed."""
        last_trim = 0.0
        while not self._stopping:
            try:
                await self.r.ping()
                if not self.ok:
                    await self.ensure_groups()
                    if self._down_logged:
                        log.warning("Redis at %s is reachable again", self.url)
                    self._down_logged = False
                self.ok, self.error = True, None
                self.workers_seen = await self.workers()
                self.queue_len = int(await self.r.zcard(self.keys.queued))
                self.depths = await self._depths()
                self.unavailable = await self._unavailable()
                self._check_producers()
                if time.monotonic() - last_trim > 60:
                    last_trim = time.monotonic()
                    await self._trim()
            except asyncio.CancelledError:
                raise
            except REDIS_ERRORS as e:
                if not self._down_logged:
                    log.error("Redis at %s is not reachable (%s): new jobs are refused until it is back", self.url, e)
                    self._down_logged = True
                self.ok, self.error = False, str(e)
            except Exception:
                log.exception("job monitor")
            await asyncio.sleep(1.0)

    async def _depths(self) -> dict[tuple[str, str], int]:
        """Entries not yet taken, per (backend, priority) queue stream: its group's lag (Redis >= 7)."""
        pairs = [(b, p) for b in self.control.cfg.generators.allowed_backends() for p in Q.PRIORITY_NAMES]
        pipe = self.r.pipeline(transaction=False)
        for b, p in pairs:
            pipe.xinfo_groups(self.keys.queue(b, p))
        out = {}
        for (b, p), groups in zip(pairs, await pipe.execute(raise_on_error=False)):
            lag = next((g.get("lag") for g in groups if g.get("name") == b), None) if isinstance(groups, list) else None
            out[(b, p)] = int(lag) if isinstance(lag, int) else 0
        return out

    async def _unavailable(self) -> dict[str, str]:
        out = {}
        for b in ("procedural", "fluidsynth", "musicgen"):
            why = await self.r.get(self.keys.unavailable(b))
            if why:
                out[b] = why
        return out

    def _check_producers(self) -> None:
        live = {w["id"] for w in self.workers_seen}
        c = self.control
        for s in list(getattr(c, "streams", {}).values()):
            p = s.producer
            if isinstance(p, WorkerHandle) and not s.finished.is_set() and p.id not in live:
                c.check_crumb(f"worker-{self.worker_backends.get(p.id, 'procedural')}", None)
                c.abort_streams_of(p)

    async def _trim(self) -> None:
        k = self.keys
        n = await self.r.zcard(k.jobs)
        if n <= self.max_kept:
            return
        old = await self.r.zrange(k.jobs, 0, n - self.max_kept - 1)
        p = self.r.pipeline(transaction=False)
        for jid in old:
            p.hget(k.job(jid), "status")
        states = await p.execute()
        p = self.r.pipeline(transaction=False)
        for jid, st in zip(old, states):
            if st is None or st in FINAL:
                p.delete(k.job(jid), k.job_events(jid))
                p.zrem(k.jobs, jid)
        await p.execute()

    async def _events_loop(self) -> None:
        # from the newest entry at start (or, for a restarted control, the one after the last
        # entry its predecessor handled); then each entry's id, so nothing is missed between reads
        last = self.last_event_id if isinstance(self.last_event_id, str) and _entry_id(self.last_event_id) else None
        while not self._stopping:
            try:
                if last is None:
                    newest = await self.r.xrevrange(self.keys.events, count=1)
                    last = newest[0][0] if newest else "0-0"
                got = await self.r.xread({self.keys.events: last}, count=200, block=1000)
            except asyncio.CancelledError:
                raise
            except REDIS_ERRORS:
                await asyncio.sleep(1.0)
                continue
            except redis.ResponseError as e:
                log.error("reading job events: %s", e)
                await asyncio.sleep(1.0)
                continue
            for eid, e in _events_in(got):
                last = self.last_event_id = eid
                if e is None:
                    log.warning("job events: ignored entry %s, which is not a jackgen event", eid)
                    continue
                try:
                    self._on_event(e)
                except Exception:
                    log.exception("handling job event %.200s", e)

    def _on_event(self, e: dict) -> None:
        ev = e.get("event")
        jid = e.get("job_id")
        if ev in ("primed", "stream_end"):
            wid = e.get("worker")
            if isinstance(wid, str) and isinstance(e.get("track"), int) and isinstance(e.get("epoch"), int):
                self.control.on_stream_event(self.handle(wid), e)
            return
        if not isinstance(jid, str):
            return
        if ev == "started" and isinstance(e.get("track"), int) and isinstance(e.get("worker"), str):
            asyncio.create_task(self._grant(jid, e))
        if ev in FINAL:
            self.active.pop(jid, None)
        elif ev != "retried" or e.get("status") == "retrying":
            a = self.active.setdefault(jid, {"job_id": jid, "status": "queued", "backend": e.get("backend"),
                                             "progress": 0.0, "track": None})
            a["status"] = e.get("status") or a["status"]
            if "progress" in e:
                a["progress"] = round(float(e["progress"]), 3)
            if isinstance(e.get("track"), int):
                a["track"] = e["track"] + 1
            if len(self.active) > 10_000:  # events of jobs whose end was never seen (control was down)
                self.active.pop(next(iter(self.active)))
        view = JobView(jid, str(e.get("status")), float(e.get("progress") or (1.0 if ev == "done" else 0.0)),
                       e.get("error"))
        for listener in self.listeners:
            with contextlib.suppress(Exception):
                listener(view, e)
        if ev in FINAL:
            for cb in self._on_final.pop(jid, []):
                with contextlib.suppress(Exception):
                    cb(view)

    async def _grant(self, jid: str, e: dict) -> None:
        """A worker has started a job for a track: claim the track, and tell the worker where to write."""
        c = self.control
        t = int(e["track"])
        w = self.handle(e["worker"])
        s = getattr(c, "streams", {}).get(t)
        if s is not None and s.id == jid and s.producer is w and not s.finished.is_set():
            return  # granted already (a restarted control reading the events its predecessor handled)
        try:
            if not c.sample_rate or c.rings is None or not 0 <= t < len(c.tracks):
                await w.send({"op": "no_stream", "job": jid, "reason": "the engine is not running"})
                return
            take = e.get("take")
            take_path = str(c.session_dir / "audio_gen" / f"{take}.{e.get('format') or 'wav'}") if take else None
            if e.get("remote"):  # its audio comes through Redis: the relay (in the feeder) writes the ring
                if c.feeder is None:
                    raise Unavailable("the relay (feeder) is not running")
                epoch = await c.claim_track(t, producer=None, source=f"job {jid}", stream_id=jid, take=take_path)
                key = self.keys.audio(jid, str(epoch))
                c.streams[t].relay_key = key
                await c.feeder.send({"op": "relay", "id": jid, "track": t, "epoch": epoch, "rate": c.sample_rate,
                                     "prefill_frames": int(c.cfg.generators.prefill_ms * 1e-3 * c.sample_rate),
                                     "key": key, **c.chain_request(t)})
                await w.send({"op": "stream", "job": jid, "track": t, "epoch": epoch, "relay_key": key})
                return
            epoch = await c.claim_track(t, producer=w, source=f"job {jid}", stream_id=jid, take=take_path)
            await w.send({"op": "stream", "job": jid, "track": t, "epoch": epoch,
                          "prefill_frames": int(c.cfg.generators.prefill_ms * 1e-3 * c.sample_rate),
                          "instance": c.cfg.instance, "host": Q.host_id(), "rings_id": c.rings_id,
                          **c.chain_request(t)})
        except JackgenError as err:
            log.error("job %s: cannot stream into track %d: %s", jid, t + 1, err)


def _events_in(got) -> list[tuple[str, dict | None]]:
    """An XREAD answer as (entry id, event or None for an entry that is not one of ours)."""
    return [(eid, Q.parse_event(fields)) for _, entries in got or [] for eid, fields in entries]


def _entry_id(s: str) -> bool:
    a, _, b = s.partition("-")
    return a.isdigit() and (b == "" or b.isdigit())

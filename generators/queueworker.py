"""A generator worker on the Redis queue: ``jackgen worker BACKEND [--redis URL] [--remote]``.

It joins each backend's consumer group, takes jobs (high before normal before low, see
``jackgen.bridge.jobqueue``), runs them with a warm backend (``JobRunner``), and acks a job only
after its takes are on disk (fsynced, renamed). It does not need control to be alive: a job it
has taken finishes, and its take lands, with control gone.

Three threads:

- the job loop (main thread): take a job, or reclaim one whose worker died — an entry left pending
  by a consumer whose heartbeat key has expired (after a back-off that doubles with each attempt),
  or one whose claim nobody renewed for ``claim_idle_s``; the stream's delivery count is the
  attempt number, and past ``max_attempts`` the job goes to the dead letters with its last error;
- the heartbeat: refreshes this worker's expiring key and renews the claim on the running job
  (so a long job is never reclaimed), and notices a cancel or a claim that another worker now holds;
- the inbox: what control asks of this worker (stream a job into a track, stop a stream, a chain
  change, cancel).

Every request is checked here again — the job's fields, its session name, the files it names
against this worker's media policy — since a queue entry may come from somewhere control never saw.
A forged or truncated entry is logged and moved to the dead letters; it never stops the worker.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from jackgen.bridge import jobqueue as Q
from jackgen.common.files import is_session_name
from jackgen.common.media import MediaPolicy
from jackgen.common.takes import TAKE_RE
from jackgen.generators.backends import Backend
from jackgen.common.files import DiskFull, write_failure
from jackgen.generators.job import JobError, JobSpec
from jackgen.generators.worker import JobOrder, JobRunner, LostClaim

log = logging.getLogger("jackgen.worker")

RETRY_CONSUMER = "retry"  # failed attempts wait here (no heartbeat) until their back-off has passed


@dataclass(frozen=True)
class WorkerSettings:
    heartbeat_s: float = 1.0
    worker_ttl_s: float = 5.0  # no heartbeat for this long: the worker is dead, its jobs are reclaimed
    claim_idle_s: float = 60.0  # a claim not renewed for this long is taken over (a hung worker)
    max_attempts: int = 3
    retry_backoff_s: float = 2.0
    starve_s: float = 60.0
    grant_timeout_s: float = 10.0  # how long a job for a track waits for control's stream grant (it renders meanwhile)
    max_speed: float = 0.0
    max_duration_s: float = 600.0


@dataclass
class Running:
    jid: str
    stream: str
    msg_id: str
    group: str
    fence: int
    lost: bool = False
    cancelled: bool = False
    grant: dict | None = None
    granted: threading.Event = field(default_factory=threading.Event)
    granted_at: float = 0.0
    remote: bool = False  # audio and takes go through Redis to the engine's host
    session: str = ""


class QueueWorker:
    def __init__(self, url: str, instance: str, backends: dict[str, Backend], settings: WorkerSettings,
                 sessions_dir: str, media_dirs: tuple[str, ...] = (), remote: bool = False,
                 attach_rings=None) -> None:
        self.url = url
        self.r = redis.Redis.from_url(url, decode_responses=True, socket_timeout=10, socket_connect_timeout=3)
        self.keys = Q.Keys(instance)
        self.instance = instance
        self.backends = backends
        self.s = settings
        self.sessions_dir = Path(sessions_dir).resolve()
        self.media_dirs = media_dirs
        self.remote = remote
        self.host = Q.host_id()
        self.id = Q.new_worker_id(list(backends))
        self.streams = Q.stream_names(self.keys, list(backends))
        self.scripts = {n: self.r.register_script(src) for n, src in Q.SCRIPTS.items()}
        self.stop = threading.Event()
        self.current: Running | None = None
        self.lock = threading.Lock()
        self._attach_rings = attach_rings
        self._rings: tuple[str, object] | None = None
        self.runner = JobRunner(backends, self._emit_stream, rings_for=self._rings_for,
                                max_speed=settings.max_speed, relay_for=self._relay_for)
        self.rb = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=3)  # binary: audio
        self._down_since: float | None = None
        self._last_reclaim = 0.0
        self.jobs_done = 0

    # ------------------------------------------------------------ redis, through outages
    def _call(self, fn, *, forever: bool = False, what: str = "Redis"):
        """``fn()``; on a lost connection, log once and retry every second (forever for what must
        not be lost, such as a job's result), else re-raise."""
        while True:
            try:
                out = fn()
                if self._down_since is not None:
                    log.warning("Redis at %s is back after %.1f s", self.url, time.monotonic() - self._down_since)
                    self._down_since = None
                return out
            except (redis.ConnectionError, redis.TimeoutError) as e:
                if self._down_since is None:
                    self._down_since = time.monotonic()
                    log.error("Redis at %s is not reachable (%s); retrying every second", self.url, e)
                if not forever or self.stop.is_set():  # stopping: what is unsaid is reclaimed later
                    raise
                time.sleep(1.0)

    def ensure_groups(self) -> None:
        for s in self.streams:
            try:
                self.r.xgroup_create(s, Q.backend_of(s), id="0", mkstream=True)
            except redis.ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise

    def register(self) -> None:
        info = {"id": self.id, "host": self.host.split("/")[0], "host_id": self.host, "pid": os.getpid(),
                "backends": ",".join(self.backends), "remote": int(self.remote), "started_at": time.time(),
                **{f"{k}": str(v) for b in self.backends.values() for k, v in b.describe().items()
                   if k in ("device", "model", "dtype")}}
        p = self.r.pipeline()
        p.hset(self.keys.worker(self.id), mapping=info)
        p.sadd(self.keys.workers, self.id)
        p.set(self.keys.alive(self.id), "1", px=int(self.s.worker_ttl_s * 1000))
        p.delete(self.keys.inbox(self.id))
        for b in self.backends:  # it loaded: jobs for it are welcome again
            p.delete(self.keys.unavailable(b))
        p.execute()

    def unregister(self) -> None:
        p = self.r.pipeline()
        p.delete(self.keys.alive(self.id), self.keys.worker(self.id), self.keys.inbox(self.id))
        p.srem(self.keys.workers, self.id)
        p.execute()

    # ------------------------------------------------------------ main
    def run(self) -> int:
        self._call(self.ensure_groups, forever=True)
        self._call(self.register, forever=True)
        log.info("worker %s (%s) on the queue at %s", self.id, ", ".join(self.backends), self.url)
        from jackgen.common.sdnotify import notify

        notify("READY=1")  # its backends are loaded (models warm) and it is on the queue
        threads = [threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True),
                   threading.Thread(target=self._inbox_loop, name="inbox", daemon=True)]
        for t in threads:
            t.start()
        try:
            while not self.stop.is_set():
                try:
                    item = self._reclaim() or self._take(block_ms=1000)
                    if self._down_since is not None:
                        log.warning("Redis at %s is back after %.1f s", self.url, time.monotonic() - self._down_since)
                        self._down_since = None
                    if item is not None:
                        self._process(*item)
                except (redis.ConnectionError, redis.TimeoutError) as e:
                    if self._down_since is None:
                        self._down_since = time.monotonic()
                        log.error("Redis at %s is not reachable (%s); retrying every second", self.url, e)
                    self.stop.wait(1.0)
                except redis.ResponseError as e:
                    if "NOGROUP" in str(e):  # a wiped Redis: make the groups again
                        self.ensure_groups()
                    else:
                        log.error("Redis refused a queue command: %s", e)
                        time.sleep(1.0)
        finally:
            self.stop.set()
            self.runner.shutdown()
            try:
                self.unregister()
            except redis.RedisError:
                pass
        return 0

    def _take(self, block_ms: int):
        groups = [Q.backend_of(s) for s in self.streams]
        r = self.scripts["take"](keys=self.streams, args=[self.id, int(time.time() * 1000),
                                                          int(self.s.starve_s * 1000), *groups])
        if r and r[0]:
            stream, entry_id, flat = r[0], r[1], r[2]
            return stream, entry_id, dict(zip(flat[::2], flat[1::2])), 1
        last = r[1:]
        if self.stop.is_set() or not block_ms:
            return None
        self.r.xread(dict(zip(self.streams, last)), count=1, block=block_ms)  # wakes on a new entry
        return None

    def _reclaim(self):
        """One job to take over from a dead, hung or failed attempt, or None."""
        now = time.monotonic()
        if now - self._last_reclaim < self.s.heartbeat_s:
            return None
        self._last_reclaim = now
        for s in self.streams:
            group = Q.backend_of(s)
            summary = self.r.xpending(s, group)
            if not summary or not summary.get("pending"):
                continue
            for c in summary.get("consumers") or []:
                name = c["name"]
                if name == self.id or (name != RETRY_CONSUMER and self.r.exists(self.keys.alive(name))):
                    continue
                min_idle = 0 if name == RETRY_CONSUMER else int(self.s.worker_ttl_s * 1000)
                for e in self.r.xpending_range(s, group, min="-", max="+", count=10, consumername=name,
                                               idle=min_idle):
                    delivered = int(e["times_delivered"])
                    if e["time_since_delivered"] < Q.retry_backoff_s(delivered, self.s.retry_backoff_s) * 1000:
                        continue  # backing off: attempt 2 waits retry_backoff_s, attempt 3 twice that, ...
                    got = self.r.xclaim(s, group, self.id, e["time_since_delivered"], [e["message_id"]])
                    if got and got[0] and got[0][1] is not None:
                        why = "its earlier attempt failed" if name == RETRY_CONSUMER else \
                            f"worker {name} stopped sending heartbeats"
                        log.warning("taking over job entry %s on %s: %s", e["message_id"], s, why)
                        self._note_reclaimed(got[0][1], name)
                        return s, got[0][0], got[0][1], delivered + 1
            # a claim that nobody renewed (a hung worker that still has a heartbeat)
            nxt, msgs, *_ = self.r.xautoclaim(s, group, self.id, int(self.s.claim_idle_s * 1000), "0-0", count=1)
            for entry_id, fields in msgs:
                if fields is None:
                    continue
                p = self.r.xpending_range(s, group, min=entry_id, max=entry_id, count=1)
                delivered = int(p[0]["times_delivered"]) if p else 1
                log.warning("taking over job entry %s on %s: its claim was not renewed for %.0f s",
                            entry_id, s, self.s.claim_idle_s)
                self._note_reclaimed(fields, "a hung worker")
                return s, entry_id, fields, delivered
        return None

    def _note_reclaimed(self, fields: dict, previous: str) -> None:
        jid = fields.get("job")
        if isinstance(jid, str) and Q.JOB_ID_RE.match(jid) and previous != RETRY_CONSUMER:
            self.r.hset(self.keys.job(jid), "error", f"worker {previous} died while running it")

    # ------------------------------------------------------------ one entry
    def _dead(self, stream: str, entry_id: str, jid: str, error: str, attempts: int) -> None:
        log.error("job entry %s (%s) -> dead letters: %s", entry_id, jid or "?", error)
        k = self.keys
        ev = Q.event_json("failed", jid, "failed", error=error, dead=True, attempts=attempts)
        self._call(lambda: self.scripts["dead"](
            keys=[k.job(jid or "-"), k.events, k.job_events(jid or "-"), k.queued, stream, k.dead],
            args=[jid or "-", Q.backend_of(stream), entry_id, error, attempts, Q.backend_of(stream), ev,
                  Q.EVENTS_MAXLEN, Q.JOB_EVENTS_MAXLEN, Q.DEAD_MAXLEN, stream]), forever=True)

    def _process(self, stream: str, entry_id: str, fields: dict, delivered: int) -> None:
        k = self.keys
        group = Q.backend_of(stream)
        jid = fields.get("job") if isinstance(fields, dict) else None
        if not isinstance(jid, str) or not Q.JOB_ID_RE.match(jid) or fields.get("v") != "1":
            self._dead(stream, entry_id, "", f"not a jackgen job entry: {str(fields)[:200]}", delivered)
            return
        h = self.r.hgetall(k.job(jid))
        if not h:
            self._dead(stream, entry_id, jid, "the entry names a job that does not exist", delivered)
            return
        remote = self.remote or h.get("host", self.host) != self.host
        released = int(h.get("released") or 0)
        attempt = max(1, delivered - released)
        if attempt > self.s.max_attempts:
            last = h.get("error") or "its worker died"
            self._dead(stream, entry_id, jid, f"gave up after {attempt - 1} attempts: {last}", attempt - 1)
            return
        ev = Q.event_json("started", jid, "running", worker=self.id, backend=group, host=self.host.split("/")[0], attempt=attempt,
                          pid=os.getpid(), track=_int_or_none(h.get("track")), take=_first_take(h),
                          format=_spec_format(h), remote=remote)
        cev = Q.event_json("cancelled", jid, "cancelled")
        # current before the claim: control's grant can answer "started" before the claim call returns
        run = Running(jid, stream, entry_id, group, 0, remote=remote, session=h.get("session", ""))
        with self.lock:
            self.current = run
        try:
            fence, st = self.scripts["claim"](keys=[k.job(jid), k.events, k.job_events(jid), k.queued],
                                              args=[jid, self.id, time.time(), attempt, ev, Q.EVENTS_MAXLEN,
                                                    Q.JOB_EVENTS_MAXLEN, cev])
        except BaseException:
            with self.lock:
                self.current = None
            raise
        if int(fence) <= 0:
            with self.lock:
                self.current = None
            self.r.xack(stream, group, entry_id)  # cancelled, or already done by an earlier attempt
            log.info("job %s is %s: nothing to do", jid, st)
            return
        run.fence = int(fence)
        try:
            self._run(run, h, attempt, delivered)
        finally:
            with self.lock:
                self.current = None

    def _publish(self, run: Running, event: str, fields: dict, status: str = "", ack: bool = False,
                 extra_event: dict | None = None, forever: bool = False) -> bool:
        k = self.keys
        ev = Q.event_json(event, run.jid, status or "running", **(extra_event if extra_event is not None else fields))
        ok = self._call(lambda: self.scripts["fenced"](
            keys=[k.job(run.jid), k.events, k.job_events(run.jid), k.queued, run.stream],
            args=[run.jid, run.fence, ev, status, run.group, run.msg_id if ack else "", Q.EVENTS_MAXLEN,
                  Q.JOB_EVENTS_MAXLEN, *Q.pairs(fields)]), forever=forever)
        if not ok:
            run.lost = True
        return bool(ok)

    def _order(self, run: Running, h: dict) -> JobOrder:
        """The job's hash, checked as if it came from a stranger."""
        job = Q.decode_job(h)
        spec = job.get("spec")
        if not isinstance(spec, dict):
            raise JobError("the job has no readable spec")
        req = {k2: v for k2, v in spec.items() if v is not None and k2 in JobSpec.KEYS}
        if isinstance(req.get("track"), int) and not isinstance(req["track"], bool):
            req["track"] += 1  # stored 0-based, as the spec keeps it; requests count from 1
        parsed = JobSpec.from_dict(req, max_duration_s=self.s.max_duration_s)
        takes = job.get("takes")
        if not isinstance(takes, list) or len(takes) != parsed.variations or \
                not all(isinstance(t, str) and TAKE_RE.match(t) for t in takes):
            raise JobError("the job's take ids are not valid")
        session = h.get("session") or ""
        if not is_session_name(session):
            raise JobError(f"session name {session!r} is not allowed")
        rate = job.get("rate")
        if not isinstance(rate, int) or not 8000 <= rate <= 384000:
            raise JobError(f"sample rate {rate!r} is not one jackgen runs at")
        session_dir = self.sessions_dir / session
        media = MediaPolicy.for_session(session_dir, self.sessions_dir, self.media_dirs)
        for name, what in (("midi", "MIDI file"), ("soundfont", "SoundFont"), ("melody", "melody file")):
            raw = getattr(parsed, name)
            if raw is not None:
                try:
                    media.resolve(raw, what, kind=name, field_name=name)
                except Exception as e:
                    raise JobError(str(e)) from None

        asked = time.monotonic()

        def grant(block_s: float | None) -> dict | None | bool:
            left = self.s.grant_timeout_s - (time.monotonic() - asked)
            if not run.granted.wait(max(0.0, left if block_s is None else min(block_s, left))):
                if block_s is not None and left > 0:
                    return False
                log.warning("job %s: no stream grant from control within %.0f s; rendering the take only",
                            run.jid, self.s.grant_timeout_s)
                return None
            if run.granted_at - asked > 0.5:
                log.info("job %s: control's stream grant came after %.1f s", run.jid, run.granted_at - asked)
            return run.grant

        return JobOrder(run.jid, parsed, takes, session_dir, rate, media, run.fence,
                        float(job.get("submitted_at") or time.time()), parsed.track, grant,
                        extra={"worker": self.id})

    def _run(self, run: Running, h: dict, attempt: int, delivered: int) -> None:
        try:
            order = self._order(run, h)
        except JobError as e:
            self._finish_failed(run, str(e))
            return

        def should_stop() -> bool:
            return run.lost or run.cancelled or self.stop.is_set()

        def publish(event: str, fields: dict) -> None:
            try:
                self._publish(run, event, fields)
            except (redis.ConnectionError, redis.TimeoutError):
                pass  # progress is not worth waiting for; the result is (forever=True below)

        t0 = time.perf_counter()
        try:
            result = self.runner.run(order, publish, should_stop)
        except LostClaim:
            run.lost = True
            result = None
        except (JobError, DiskFull) as e:  # a full disk: said plainly, not retried (free space, then retry it)
            self._finish_failed(run, str(e))
            return
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                log.exception("job %s attempt %d failed", run.jid, attempt)
                self._retry_or_dead(run, f"{type(e).__name__}: {e}", attempt)
                return
            self.runner.discard_all(order)
            self._finish_failed(run, write_failure(e.filename or order.session_dir / "audio_gen" / "take.wav", e))
            return
        except Exception as e:
            log.exception("job %s attempt %d failed", run.jid, attempt)
            self._retry_or_dead(run, f"{type(e).__name__}: {e}", attempt)
            return
        if run.lost or result is None:
            log.warning("job %s: another worker holds it now; dropping this attempt", run.jid)
            if result:
                self.runner.discard(result)
            return
        if result.get("cancelled"):
            if self.stop.is_set() and not run.cancelled:
                self._release(run)
                return
            self._publish(run, "cancelled", {"finished_at": time.time()}, status="cancelled", ack=True,
                          extra_event={}, forever=True)
            log.info("job %s cancelled", run.jid)
            return
        if self._renew(run) == 0:  # check the claim right before the takes take their names
            self.runner.discard(result)
            log.warning("job %s: the claim was lost before its takes were written; dropping them", run.jid)
            return
        try:
            outputs = self.runner.commit(order, result)
        except OSError as e:
            self.runner.discard(result, committed=True)
            self._finish_failed(run, write_failure(order.session_dir / "audio_gen" / "take.json", e))
            return
        if run.remote:
            try:
                outputs = self._land(run, outputs)
            except TimeoutError as e:
                self._retry_or_dead(run, str(e), attempt)
                return
        fields = {"outputs": outputs, "timings": result["timings"], "info": result["info"], "progress": 1.0,
                  "finished_at": time.time(), "error": ""}
        if self._publish(run, "done", fields, status="done", ack=True,
                         extra_event={"outputs": outputs, "attempt": attempt, "backend": order.spec.backend,
                                      "timings": result["timings"]}, forever=True):
            self.jobs_done += 1
            log.info("job %s done in %.2f s: %s", run.jid, time.perf_counter() - t0,
                     ", ".join(o["path"] for o in outputs))
        else:
            log.warning("job %s: finished, but another worker had taken it over (its takes have the same names)",
                        run.jid)

    def _land(self, run: Running, outputs: list[dict], timeout_s: float = 120.0) -> list[dict]:
        """Send the takes to the engine's host and wait until its relay has them on disk."""
        from jackgen.generators.relay import send_take

        for o in outputs:
            meta = json.loads(Path(o["json"]).read_text())
            self._call(lambda: send_take(self.rb, self.keys, run.jid, run.fence, run.session, Path(o["path"]), meta),
                       forever=True)
        want = [f"landed:{o['take']}" for o in outputs]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not run.lost:
            got = self._call(lambda: self.r.hmget(self.keys.job(run.jid), want), forever=True)
            if all(got):
                return [{**o, "path": p, "json": str(Path(p).with_suffix(".json"))} for o, p in zip(outputs, got)]
            time.sleep(0.1)
        raise TimeoutError(f"the engine's host did not land the takes within {timeout_s:.0f} s "
                           "(is jackgen running there, with its relay?)")

    def _finish_failed(self, run: Running, error: str) -> None:
        log.error("job %s failed: %s", run.jid, error)
        self._publish(run, "failed", {"error": error, "finished_at": time.time()}, status="failed", ack=True,
                      extra_event={"error": error}, forever=True)

    def _retry_or_dead(self, run: Running, error: str, attempt: int) -> None:
        if attempt >= self.s.max_attempts:
            run_fence_ok = self._publish(run, "retried", {"error": error}, extra_event={"error": error})
            if run_fence_ok:
                self._dead(run.stream, run.msg_id, run.jid, f"gave up after {attempt} attempts: {error}", attempt)
            return
        wait = Q.retry_backoff_s(attempt, self.s.retry_backoff_s)
        if self._publish(run, "retried", {"error": error}, status="retrying",
                         extra_event={"error": error, "attempt": attempt, "retry_in_s": wait}, forever=True):
            self.r.xclaim(run.stream, run.group, RETRY_CONSUMER, 0, [run.msg_id], justid=True)

    def _release(self, run: Running) -> None:
        """This worker is stopping: the job goes back to the queue without using up an attempt."""
        log.info("job %s goes back to the queue (this worker is stopping)", run.jid)
        try:
            self.r.hincrby(self.keys.job(run.jid), "released", 1)
            if self._publish(run, "retried", {"error": ""}, status="retrying",
                             extra_event={"reason": "its worker stopped", "retry_in_s": 0}):
                self.r.xclaim(run.stream, run.group, RETRY_CONSUMER, 0, [run.msg_id], justid=True)
        except redis.RedisError as e:
            log.warning("could not hand job %s back (%s); it is reclaimed once this worker's heartbeat expires",
                        run.jid, e)

    def _renew(self, run: Running) -> int:
        k = self.keys
        try:
            r = int(self.scripts["renew"](keys=[k.job(run.jid), run.stream],
                                          args=[run.fence, run.group, self.id, run.msg_id]))
        except (redis.ConnectionError, redis.TimeoutError):
            return 1  # unknown: keep going; the fenced result decides
        if r == 0:
            run.lost = True
        elif r == 2 and not run.cancelled:
            run.cancelled = True
            self.runner.cancel_streams_of(run.jid)
        return r

    def refuse_all(self, reason: str) -> int:
        """This worker's backend cannot load: say so (control answers 503 with the reason) and fail
        the jobs that wait for it, with the reason, rather than leave them queued for nobody."""
        for b in self.backends:
            self.r.set(self.keys.unavailable(b), reason)
        self.ensure_groups()
        n = 0
        while (item := self._take(block_ms=0)) is not None:
            stream, entry_id, fields, _ = item
            jid = fields.get("job") if isinstance(fields.get("job"), str) else ""
            k = self.keys
            if not Q.JOB_ID_RE.match(jid):
                self._dead(stream, entry_id, "", f"not a jackgen job entry: {str(fields)[:200]}", 1)
                continue
            fence, _st = self.scripts["claim"](keys=[k.job(jid), k.events, k.job_events(jid), k.queued],
                                               args=[jid, self.id, time.time(), 1, "", Q.EVENTS_MAXLEN,
                                                     Q.JOB_EVENTS_MAXLEN, ""])
            if int(fence) <= 0:
                self.r.xack(stream, Q.backend_of(stream), entry_id)
                continue
            self._finish_failed(Running(jid, stream, entry_id, Q.backend_of(stream), int(fence)), reason)
            n += 1
        return n

    # ------------------------------------------------------------ heartbeat and inbox
    def _heartbeat_loop(self) -> None:
        from jackgen.common.sdnotify import notify

        while not self.stop.wait(self.s.heartbeat_s):
            notify("WATCHDOG=1")  # systemd's watchdog: a stopped (hung) worker stops saying it
            try:
                p = self.r.pipeline()
                p.set(self.keys.alive(self.id), "1", px=int(self.s.worker_ttl_s * 1000))
                with self.lock:
                    run = self.current
                p.hset(self.keys.worker(self.id), mapping={"heartbeat": time.time(), "busy": run.jid if run else "",
                                                           "jobs_done": self.jobs_done})
                p.execute()
                if run is not None and run.fence > 0:  # (0: its claim is being made right now)
                    self._renew(run)
            except redis.RedisError:
                continue  # the job loop reports the outage

    def _inbox_loop(self) -> None:
        last = "0-0"
        key = self.keys.inbox(self.id)
        while not self.stop.is_set():
            try:
                got = self.r.xread({key: last}, count=100, block=1000)
            except redis.RedisError:
                time.sleep(1.0)
                continue
            for _, entries in got or []:
                for entry_id, fields in entries:
                    last = entry_id
                    try:
                        msg = json.loads(fields.get("m", ""))
                        if not isinstance(msg, dict):
                            raise ValueError("not an object")
                        self._on_inbox(msg)
                    except (ValueError, KeyError, TypeError) as e:
                        log.warning("worker inbox: ignored a message that does not parse (%s): %.200s", e, fields)

    def _on_inbox(self, msg: dict) -> None:
        op = msg.get("op")
        if op in ("stream", "no_stream"):
            with self.lock:
                run = self.current
            if run is None or run.jid != msg.get("job"):
                if op == "stream":  # too late: the job is over (or was never ours); say so, control ends it
                    self._emit_stream({"event": "stream_end", "state": "cancelled", "id": msg.get("job"),
                                       "track": int(msg["track"]), "epoch": int(msg["epoch"]), "frames": 0,
                                       "message": "the job was no longer running here"})
                return
            run.grant = msg if op == "stream" else None
            run.granted_at = time.monotonic()
            run.granted.set()
        elif op == "stop_stream":
            threading.Thread(target=self.runner.stop_stream, args=(int(msg["track"]),), daemon=True).start()
        elif op == "chain":
            self.runner.chain_change(int(msg["track"]), dict(msg["change"]))
        elif op == "cancel":
            with self.lock:
                run = self.current
            if run is not None and run.jid == msg.get("job"):
                run.cancelled = True
            self.runner.cancel_streams_of(str(msg.get("job")))
        else:
            raise ValueError(f"unknown op {op!r}")

    # ------------------------------------------------------------ streams into track rings
    def _emit_stream(self, e: dict) -> None:
        """A pump's event (primed, stream_end) to control, on the events stream."""
        e = {**e, "worker": self.id, "job_id": e.get("id")}
        try:
            self.r.xadd(self.keys.events, {"job": str(e.get("id")), "e": json.dumps(e, default=str)},
                        maxlen=Q.EVENTS_MAXLEN, approximate=True)
        except redis.RedisError as err:
            log.warning("could not tell control about the stream on track %s: %s", e.get("track"), err)

    def _relay_for(self, order, grant: dict):
        return RelaySender(self.rb, str(grant["relay_key"]), order.rate, order.id, int(grant["track"]))

    def _rings_for(self, grant: dict):
        """The rings a grant names, attached directly when they are on this machine."""
        if self.remote or grant.get("host") != self.host or grant.get("instance") != self.instance:
            self._emit_stream({"event": "stream_end", "state": "error", "id": grant.get("job"),
                               "track": int(grant["track"]), "epoch": int(grant["epoch"]), "frames": 0,
                               "message": "this worker is not on the engine's machine"})
            return None
        rid = str(grant.get("rings_id"))
        if self._rings is None or self._rings[0] != rid:
            if self._rings is not None:
                self.runner.shutdown()  # streams into rings that are gone
                self._rings[1].close()
            self._rings = (rid, self._attach_rings(self.instance))
            from jackgen.bridge.crumb import open_crumb  # the plugin a stream's chain is inside, if this dies

            self.runner.crumb = open_crumb(self.instance, f"worker-{next(iter(self.backends))}", 16, create=False)
        return self._rings[1]


class RelaySender:
    """A stream into a track on another machine: each chunk as an entry of the job's audio stream,
    for the relay there (``jackgen.generators.relay``). The track's chain runs at the relay."""

    def __init__(self, r, key: str, rate: int, job_id: str, track: int) -> None:
        self.r, self.key, self.rate = r, key, rate
        self.job_id, self.track = job_id, track
        self.pos = 0
        self.ended = False

    def put(self, chunk) -> None:
        from jackgen.generators.relay import encode_chunk

        if self.ended:
            return
        if chunk is None:
            self._end({"eos": 1, "frames": self.pos})
            return
        self.r.xadd(self.key, encode_chunk(self.pos, chunk, self.rate))
        self.pos += chunk.shape[0]

    def _end(self, fields: dict) -> None:
        self.ended = True
        try:
            self.r.xadd(self.key, fields)
            self.r.expire(self.key, 3600)
        except redis.RedisError as e:
            log.warning("could not end the relayed stream %s: %s", self.key, e)

    def fail(self) -> None:
        if not self.ended:
            self._end({"cancel": 1})

    def cancel(self, wait: bool = True) -> None:
        self.fail()

    def submit_change(self, change: dict) -> None:
        pass  # the chain runs at the relay


def _int_or_none(v) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _first_take(h: dict) -> str | None:
    try:
        return json.loads(h.get("takes", "[]"))[0]
    except (ValueError, IndexError, TypeError):
        return None


def _spec_format(h: dict) -> str:
    try:
        return str(json.loads(h.get("spec", "{}")).get("output_format") or "wav")
    except (ValueError, AttributeError):
        return "wav"


def run_queue_worker(url: str, instance: str, backend_names: list[str], options: dict, settings: WorkerSettings,
                     sessions_dir: str, media_dirs: tuple[str, ...], remote: bool) -> int:
    """Load the backends (once, kept warm), then take jobs until SIGTERM/SIGINT."""
    from jackgen.common.link import EXIT_UNAVAILABLE
    from jackgen.common.proctitle import set_title
    from jackgen.generators.backends import make_backend

    set_title(f"jackgen: worker {','.join(backend_names)}")
    backends: dict[str, Backend] = {}
    for name in backend_names:
        try:
            b = make_backend(name, **options)
            b.load()
        except Exception as e:
            reason = str(e) or type(e).__name__
            log.error("worker %s cannot start: %s", name, reason)
            try:
                n = QueueWorker(url, instance, {name: None}, settings, sessions_dir).refuse_all(reason)  # type: ignore[dict-item]
                if n:
                    log.error("failed %d waiting %s job(s) with that reason", n, name)
            except redis.RedisError as err:
                log.error("and Redis at %s is not reachable to say so: %s", url, err)
            return EXIT_UNAVAILABLE
        backends[name] = b

    def attach(instance: str):
        from jackgen.bridge.instance import InstanceRings

        return InstanceRings.attach(instance, timeout_s=5.0)

    w = QueueWorker(url, instance, backends, settings, sessions_dir, media_dirs, remote, attach)

    def on_signal(signum, frame) -> None:
        w.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        return w.run()
    except redis.RedisError as e:  # stopped while Redis was gone
        log.warning("stopped without Redis (%s)", e)
        return 0
    finally:
        for b in backends.values():
            b.close()

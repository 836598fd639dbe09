"""The Redis job queue with a real redis-server: priorities, starvation, fences, forged entries,
a Redis that is killed and comes back. Workers run in threads of this process (the process-level
faults — SIGKILLed workers, control — are in tests/integration)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import pytest
import redis

from jackgen.bridge import jobqueue as Q
from jackgen.common.errors import Unavailable
from jackgen.common.media import MediaPolicy
from jackgen.daemon.config import load_config
from jackgen.daemon.jobs.board import JobBoard
from jackgen.generators.backends import ProceduralBackend
from jackgen.generators.queueworker import QueueWorker, WorkerSettings
from tests.conftest import unique_instance, wait_for


class Host:
    """Control's side as the job board sees it, for jobs that stream into no track."""

    def __init__(self, tmp: Path, instance: str, **overrides) -> None:
        self.cfg = load_config(None, {"instance": instance, "control.sessions_dir": str(tmp / "sessions"),
                                      **overrides})
        self.session = "s"
        self.session_dir = self.cfg.session_dir("s")
        self.media = MediaPolicy.for_session(self.session_dir, self.cfg.control.sessions_dir)
        self.sample_rate = 0
        self.rings = None
        self.tracks: list = []
        self.streams: dict = {}
        self.rings_id = ""


class Board:
    """A JobBoard driven from a test thread (its own event loop)."""

    def __init__(self, host: Host, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.board = JobBoard(host, url, embedded=False)

    def __call__(self, coro):
        return self.loop.run_until_complete(coro)

    def submit(self, **req):
        return self(self.board.submit(req))["job_id"]

    def get(self, jid):
        return self(self.board.get(jid))

    def close(self):
        self(self.board.stop())
        self.loop.close()


@pytest.fixture
def queue(tmp_path, redis_server):
    made: list = []

    def make(settings: WorkerSettings | None = None, start: bool = True, **overrides):
        inst = made[0][0].cfg.instance if made else unique_instance()
        host = Host(tmp_path, inst, **overrides)
        board = Board(host, redis_server.url)
        board(board.board.ensure_groups())
        w = QueueWorker(redis_server.url, inst, {"procedural": ProceduralBackend()},
                        settings or WorkerSettings(heartbeat_s=0.1, worker_ttl_s=0.5), host.cfg.control.sessions_dir)
        t = threading.Thread(target=w.run, daemon=True)
        made.append((host, board, w, t))
        if start:
            t.start()
        return host, board, w, t

    yield make
    for _, board, w, t in made:
        w.stop.set()
        if t.is_alive():
            t.join(10)
        board.close()


def started_order(board: Board, ids: list[str]) -> list[str]:
    return sorted(ids, key=lambda j: board.get(j)["timings"]["started_at"])


def test_high_before_normal_before_low_and_low_never_starves(queue):
    host, board, w, t = queue(start=False)
    low = [board.submit(prompt="x", duration=0.5, priority="low", seed=k) for k in range(2)]
    normal = [board.submit(prompt="x", duration=0.5, seed=k) for k in range(2)]
    high = board.submit(prompt="x", duration=0.5, priority="high")
    t.start()
    for j in low + normal + [high]:
        wait_for(lambda: board.get(j)["status"] == "done", 30, 0.05, f"job {j}")
    assert started_order(board, low + normal + [high]) == [high, *normal, *low]
    # a low job that has waited starve_s goes first
    w.stop.set()
    t.join(10)
    host2, board2, w2, t2 = queue(WorkerSettings(heartbeat_s=0.1, worker_ttl_s=0.5, starve_s=0.4), start=False)
    old_low = board2.submit(prompt="x", duration=0.5, priority="low")
    time.sleep(0.5)
    hi = board2.submit(prompt="x", duration=0.5, priority="high")
    t2.start()
    for j in (old_low, hi):
        wait_for(lambda: board2.get(j)["status"] == "done", 30, 0.05, f"job {j}")
    assert started_order(board2, [old_low, hi]) == [old_low, hi]


def test_a_stale_fence_publishes_nothing_and_done_happens_once(queue, redis_server):
    host, board, w, t = queue(start=False)
    jid = board.submit(prompt="x", duration=0.5)
    k = w.keys
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    claim = r.register_script(Q.CLAIM)
    fenced = r.register_script(Q.FENCED)

    def claim_it(worker):
        return claim(keys=[k.job(jid), k.events, k.job_events(jid), k.queued],
                     args=[jid, worker, time.time(), 1, Q.event_json("started", jid, "running"), 100, 100, ""])[0]

    def done(fence):
        return fenced(keys=[k.job(jid), k.events, k.job_events(jid), k.queued, k.queue("procedural", "normal")],
                      args=[jid, fence, Q.event_json("done", jid, "done"), "done", "procedural", "", 100, 100,
                            *Q.pairs({"progress": 1.0})])

    first, second = claim_it("a"), claim_it("b")  # b took it over
    assert second == first + 1
    assert done(first) == 0  # a lost its claim: nothing is published
    assert board.get(jid)["status"] == "running"
    assert done(second) == 1 and done(second) == 0  # one done, however often it is said
    kinds = [json.loads(f["e"])["event"] for _, f in r.xrange(k.job_events(jid))]
    assert kinds.count("done") == 1


def test_forged_and_truncated_entries_are_dead_lettered_and_the_worker_goes_on(queue, redis_server):
    host, board, w, t = queue()
    k = w.keys
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    q = k.queue("procedural", "normal")
    r.xadd(q, {"foo": "bar"})
    r.xadd(q, {"job": "../../etc/passwd", "v": "1"})
    r.xadd(q, {"job": "20990101-000000-abcdef", "v": "1"})  # no such job
    bad = {"20990101-000001-aaaaa1": '{"prompt": "x", "dura', "20990101-000001-aaaaa2":
           json.dumps({"prompt": "x", "track": 98}), "20990101-000001-aaaaa3": json.dumps({"prompt": "x"})}
    truncated, track99, session = bad
    for name, spec in bad.items():
        r.hset(k.job(name), mapping={"id": name, "status": "queued", "spec": spec, "takes": json.dumps([name]),
                                     "session": "../../tmp" if name == session else "s", "rate": "48000"})
        r.xadd(q, {"job": name, "v": "1"})
    wait_for(lambda: r.xlen(k.dead) >= 3 and all(r.hget(k.job(n), "status") == "failed" for n in bad), 20, 0.05,
             "the bad entries to be handled")
    errors = {n: r.hget(k.job(n), "error") for n in bad}
    assert "spec" in errors[truncated] and "track must be from 1 to 16" in errors[track99]
    assert "session name" in errors[session]
    dead = [f["error"] for _, f in r.xrange(k.dead)]
    assert any("not a jackgen job entry" in e for e in dead) and any("does not exist" in e for e in dead)
    jid = board.submit(prompt="x", duration=0.5)  # still working
    wait_for(lambda: board.get(jid)["status"] == "done", 20, 0.05, "a good job after the bad ones")
    assert t.is_alive()


def test_cancel_queued_and_running(queue):
    host, board, w, t = queue(WorkerSettings(heartbeat_s=0.1, worker_ttl_s=0.5, max_speed=1.0), start=False)
    running = board.submit(prompt="x", duration=30)
    waiting = board.submit(prompt="x", duration=1)
    t.start()
    wait_for(lambda: board.get(running)["status"] == "running", 10, 0.05, "the first job to start")
    assert board(board.board.cancel(waiting))["status"] == "cancelled"
    assert board(board.board.cancel(running))["status"] == "cancelled"
    time.sleep(0.5)
    assert board.get(waiting)["status"] == "cancelled" and board.get(waiting)["attempts"] == 0  # never ran
    assert not list((host.session_dir / "audio_gen").glob("*.wav"))


def test_redis_killed_and_restarted_mid_queue_loses_and_doubles_nothing(queue, redis_server):
    host, board, w, t = queue(WorkerSettings(heartbeat_s=0.1, worker_ttl_s=2.0, max_speed=20.0))
    ids = [board.submit(prompt="x", duration=2, seed=k) for k in range(12)]
    wait_for(lambda: sum(board.get(j)["status"] == "done" for j in ids) >= 3, 30, 0.05, "some jobs done")
    redis_server.kill()
    with pytest.raises(Unavailable, match="Redis at unix://.* is not reachable"):
        board.submit(prompt="x", duration=1)
    time.sleep(1.0)
    redis_server.start()
    for j in ids:
        wait_for(lambda: board.get(j)["status"] == "done", 60, 0.1, f"job {j} after the restart")
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    for j in ids:
        kinds = [json.loads(f["e"])["event"] for _, f in r.xrange(w.keys.job_events(j))]
        assert kinds.count("done") == 1, (j, kinds)
    takes = sorted(p.stem for p in (host.session_dir / "audio_gen").glob("*.wav"))
    assert takes == sorted(ids)
    assert not list((host.session_dir / "audio_gen").glob(".*part"))


def test_a_worker_stops_when_asked_even_with_redis_gone(queue, redis_server):
    host, board, w, t = queue()
    wait_for(lambda: board(board.board.workers()), 10, 0.05, "the worker to register")
    redis_server.kill()
    time.sleep(1.5)  # it is retrying by now
    w.stop.set()
    t.join(5)
    assert not t.is_alive()
    redis_server.start()

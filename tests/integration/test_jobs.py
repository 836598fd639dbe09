"""Jobs on Redis under faults, with real processes: control killed mid-stream, 200 jobs from several
clients, a remote worker whose audio goes through the relay into a track."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
import soundfile as sf

from jackgen.daemon.cli.recorder import record
from tests.conftest import wait_for
from tests.integration.test_generate import FAST_RECLAIM, events_of, job_done

pytestmark = pytest.mark.integration

PRIO = {"high": 0, "normal": 1, "low": 2}


class Workers:
    """Worker processes started by the test (as on another machine, or under systemd)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []

    def start(self, config: Path, *args: str) -> subprocess.Popen:
        log = open(self.tmp / f"worker-{len(self.procs)}.log", "ab")
        p = subprocess.Popen([sys.executable, "-m", "jackgen.daemon.cli", "worker", "procedural", *args,
                              "--config", str(config)], stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture
def workers(tmp_path):
    w = Workers(tmp_path)
    yield w
    w.stop()


def test_control_killed_while_one_job_streams_and_three_wait(jackgen, jack_server):
    jg = jackgen(extra_toml=FAST_RECLAIM + '[generators]\nmax_speed = 2.0\nworkers = ["procedural"]\n')
    streaming = jg.api("POST", "/api/music-generation", {"prompt": "trap", "duration": 8, "track": 2, "seed": 2},
                       expect=202)["job_id"]
    wait_for(lambda: jg.status()["tracks"][1]["state"] == "playing", 20, 0.02, "track 2 to play")
    waiting = [jg.api("POST", "/api/music-generation", {"prompt": "x", "duration": 1, "seed": k},
                      expect=202)["job_id"] for k in range(3)]
    old = jg.status()["processes"]
    os.kill(old["control"], signal.SIGKILL)
    # the supervisor brings control back; the worker went on without it
    wait_for(lambda: (p := _processes(jg)) and p["control"] != old["control"] and p.get("engine"), 30, 0.1,
             "control to be back")
    jobs = [job_done(jg, j, 60) for j in [streaming, *waiting]]
    assert [j["status"] for j in jobs] == ["done"] * 4, jobs
    assert all(j["attempts"] == 1 for j in jobs)  # nothing was retried: the worker never stopped
    assert jg.status()["processes"]["worker procedural"] == old["worker procedural"]
    take, _ = sf.read(jobs[0]["outputs"][0]["path"], dtype="float32")
    assert take.shape[0] == 8 * 48000
    for j in jobs:
        assert [e["event"] for e in events_of(jg, j["job_id"])].count("done") == 1


def _processes(jg) -> dict | None:
    try:
        return httpx.get(jg.url + "/api/status", timeout=2).json()["processes"]
    except (httpx.HTTPError, ValueError):
        return None


def test_200_jobs_from_several_clients_are_done_once_in_priority_order(jackgen, workers):
    jg = jackgen(extra_toml='[generators]\nworkers = []\nstart_on_demand = []\n')
    prios = ["high", "normal", "low"]
    ids: dict[str, str] = {}
    lock = threading.Lock()

    def client(c: int) -> None:
        with httpx.Client(base_url=jg.url, timeout=30) as h:
            for k in range(50):
                p = prios[(c + k) % 3]
                r = h.post("/api/music-generation", json={"prompt": "x", "duration": 0.5, "priority": p,
                                                           "seed": c * 100 + k})
                assert r.status_code == 202, r.text
                with lock:
                    ids[r.json()["job_id"]] = p

    threads = [threading.Thread(target=client, args=(c,)) for c in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 200
    wait_for(lambda: jg.status()["queue_length"] == 200, 5, 0.1, "the queue length to show 200 waiting")
    for _ in range(2):  # two workers join the queue once everything waits
        workers.start(jg.config)
    wait_for(lambda: sum(j["status"] == "done" for j in jg.api("GET", "/api/jobs?limit=300")) == 200, 180, 0.5,
             "200 jobs to be done")
    jobs = {j["job_id"]: j for j in jg.api("GET", "/api/jobs?limit=300")}
    assert all(jobs[j]["attempts"] == 1 for j in ids)
    takes = sorted(p.stem for p in (jg.sessions / "test" / "audio_gen").glob("*.wav"))
    assert takes == sorted(ids)  # one take each
    r = redis.Redis.from_url(jg.status()["redis"]["url"], decode_responses=True)
    inst = f"jackgen:{jg.instance}:"
    for j in ids:
        kinds = [json.loads(f["e"])["event"] for _, f in r.xrange(f"{inst}ev:{j}")]
        assert kinds.count("done") == 1 and kinds.count("started") == 1, (j, kinds)
    # per worker: no job started while one of higher priority waited
    by_worker: dict[str, list] = {}
    for j, p in ids.items():
        by_worker.setdefault(jobs[j]["worker"], []).append((jobs[j]["timings"]["started_at"], PRIO[p], j))
    assert len(by_worker) == 2
    starts = sorted((jobs[j]["timings"]["started_at"], PRIO[p]) for j, p in ids.items())
    for w, seq in by_worker.items():
        for t, p, j in seq:
            waiting_higher = [s for s, q in starts if q < p and s > t + 0.05]
            assert not waiting_higher, (w, j, p, waiting_higher[:3])


def test_a_remote_worker_streams_into_track_5_through_the_relay(jackgen, jack_server, workers, tmp_path):
    jg = jackgen(extra_toml='[generators]\nworkers = []\nstart_on_demand = []\n')
    url = jg.status()["redis"]["url"]
    remote_cfg = tmp_path / "remote.toml"  # "another machine": its own folders, the same Redis and instance
    remote_cfg.write_text(f'instance = "{jg.instance}"\n[control]\nsessions_dir = "{tmp_path / "remote-sessions"}"\n'
                          f'[redis]\nurl = "{url}"\n')
    workers.start(remote_cfg, "--remote")
    wait_for(lambda: [w for w in jg.api("GET", "/api/workers") if w["remote"]], 20, 0.1, "the remote worker")
    r = jg.api("POST", "/api/music-generation", {"prompt": "dnb", "duration": 12, "track": 5, "seed": 5,
                                                 "bpm": 172}, expect=202)
    st = wait_for(lambda: (s := jg.status())["tracks"][4]["state"] == "playing" and s, 30, 0.02, "track 5 to play")
    started = st["tracks"][4]["started_frame"]
    rec = record(["jackgen:track_05_L", "jackgen:track_05_R"], 1.0)
    job = job_done(jg, r["job_id"], 60)
    assert job["status"] == "done", job
    landed = Path(job["outputs"][0]["path"])
    assert landed.parent == jg.sessions / "test" / "audio_gen" and landed.is_file()  # written by the relay
    assert json.loads(landed.with_suffix(".json").read_text())["seed"] == 5
    assert not list(landed.parent.glob(".*"))  # no part or landing file left
    audio, _ = sf.read(str(landed), dtype="float32")
    off = rec.start_frame - started
    seg = audio[off: off + rec.data.shape[0]]
    assert rec.xruns_during() == 0 and rec.gaps == 0, "the capture itself was disturbed"
    assert np.array_equal(rec.data, seg)  # sample for sample
    assert jg.status()["relay"]["gaps"] == 0
    assert (tmp_path / "remote-sessions" / "test" / "audio_gen" / landed.name).is_file()  # its own copy


def test_the_embedded_redis_killed_mid_queue_comes_back_with_nothing_lost_or_doubled(jackgen):
    jg = jackgen(extra_toml=FAST_RECLAIM + '[generators]\nmax_speed = 8.0\nworkers = ["procedural"]\n')
    st = wait_for(lambda: (s := jg.status())["workers"] and s, 20, 0.1, "the worker to join the queue")
    assert st["redis"]["embedded"] and st["redis"]["ok"] and st["redis"]["url"].startswith("unix://")
    assert [w["backend"] for w in st["workers"]] == ["procedural"] and st["workers"][0]["heartbeat_age_s"] < 2
    url = st["redis"]["url"]
    r = redis.Redis.from_url(url, decode_responses=True)
    inst = f"jackgen:{jg.instance}:"
    # forged entries where control and the worker read: logged and skipped
    r.xadd(inst + "events", {"e": "{not json"})
    r.xadd(inst + "events", {"job": "x", "e": json.dumps({"event": "primed", "track": "one"})})
    wid = st["workers"][0]["id"]
    r.xadd(f"{inst}in:{wid}", {"m": "[1, 2"})
    r.xadd(f"{inst}in:{wid}", {"m": json.dumps({"op": "stream", "job": None})})
    ids = [jg.api("POST", "/api/music-generation", {"prompt": "x", "duration": 2, "seed": k}, expect=202)["job_id"]
           for k in range(10)]
    wait_for(lambda: sum(jg.api("GET", f"/api/jobs/{j}")["status"] == "done" for j in ids) >= 2, 30, 0.05,
             "a few jobs done")
    pid = int(subprocess.run(["pgrep", "-f", f"unixsocket:{url[len('unix://'):]}"], capture_output=True,
                             text=True).stdout.split()[0])
    os.kill(pid, signal.SIGKILL)
    e = jg.api("POST", "/api/music-generation", {"prompt": "x", "duration": 1}, expect=503)
    assert "Redis" in e["error"] and url in e["error"]
    wait_for(lambda: jg.status()["redis"]["ok"], 30, 0.2, "the supervisor to restart redis-server")
    for j in ids:
        job = job_done(jg, j, 60)
        assert job["status"] == "done", job
        kinds = [json.loads(f["e"])["event"] for _, f in r.xrange(f"{inst}ev:{j}")]
        assert kinds.count("done") == 1, (j, kinds)
    takes = sorted(p.stem for p in (jg.sessions / "test" / "audio_gen").glob("*.wav"))
    assert takes == sorted(ids)
    later = jg.api("POST", "/api/music-generation", {"prompt": "x", "duration": 1}, expect=202)["job_id"]
    assert job_done(jg, later)["status"] == "done"
    p = jg.cli("workers")
    assert p.returncode == 0 and "procedural" in p.stdout

#!/usr/bin/env python3
"""Job queue benchmark: what durability costs, and what the relay adds.

    bench/jobs.py [--jobs 1000] [--streams 16] [--seconds 10] --json OUT

In one run, side by side, for ``--jobs`` tiny procedural jobs (0.5 s of audio each, one worker
process with the backend warm):

- ``memory``: the old in-memory path — a priority heap in the submitting process and one worker
  process fed JSON lines on a pipe (what jobs were before Redis);
- ``redis``: the queue as jackgen runs it — a private redis-server with the append-only file on
  (``appendfsync everysec``), ``JobBoard.submit``, and a ``jackgen worker procedural`` process.

Each reports ``submit_to_started_ms`` (p50, p99: submitted one at a time, the worker idle, so it
is the queue's own latency), and ``jobs_per_s`` with all jobs submitted at once (bounded by
rendering, the same in both). ``ratio`` divides redis by memory.

The relay: ``--streams`` senders each push a real-time stereo stream (1024-frame chunks at the
engine's pace, 48 kHz) through Redis while ``relay_chunks`` readers take them off, as the relay
does. ``relay.latency_ms`` is from the sender's XADD (its timestamp in the entry) to the reader having the
chunk; the senders run in another process, as remote workers would; a chunk that
arrives after the engine would have played it (playback starts once 100 ms are in, as with
``generators.prefill_ms``) is an underrun.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.engine import machine, report  # noqa: E402

WORKER_LOOP = r"""
import json, sys, time
from pathlib import Path
from jackgen.generators.backends import ProceduralBackend
from jackgen.generators.job import JobSpec
from jackgen.generators.worker import JobOrder, JobRunner
b = ProceduralBackend(); b.load()
runner = JobRunner({"procedural": b}, lambda e: None)
print(json.dumps({"event": "ready"}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    print(json.dumps({"event": "started", "id": req["id"], "t": time.time()}), flush=True)
    o = JobOrder(req["id"], JobSpec.from_dict(req["spec"]), [req["id"]], Path(req["dir"]), 48000)
    res = runner.run(o, lambda e, f: None, lambda: False)
    runner.commit(o, res)
    print(json.dumps({"event": "done", "id": req["id"], "t": time.time()}), flush=True)
"""


def pct(xs: list[float]) -> dict:
    a = np.array(xs)
    return {"p50": round(float(np.percentile(a, 50)), 3), "p99": round(float(np.percentile(a, 99)), 3),
            "max": round(float(a.max()), 3), "n": len(xs)}


def take_id(k: int) -> str:
    return f"20990101-{k // 1000000:06d}-{k % 1000000:06x}"


# ---------------------------------------------------------------------------- memory (before Redis)
def bench_memory(n: int, folder: Path) -> dict:
    p = subprocess.Popen([sys.executable, "-c", WORKER_LOOP], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True, bufsize=1)
    assert json.loads(p.stdout.readline())["event"] == "ready"
    heap: list = []
    seq = 0

    def one(k: int) -> tuple[float, float]:
        nonlocal seq
        t0 = time.time()
        heapq.heappush(heap, (1, seq, k))  # submit: the heap, as the old board did
        seq += 1
        _, _, kk = heapq.heappop(heap)  # dispatch
        p.stdin.write(json.dumps({"id": take_id(kk), "spec": {"prompt": "x", "duration": 0.5, "seed": kk},
                                  "dir": str(folder)}) + "\n")
        p.stdin.flush()
        started = json.loads(p.stdout.readline())
        assert started["event"] == "started"
        done = json.loads(p.stdout.readline())
        return started["t"] - t0, done["t"]

    lat = [one(k)[0] * 1000 for k in range(n)]
    t0 = time.time()
    for k in range(n):  # all at once: the heap holds them, the worker drains one at a time
        heapq.heappush(heap, (1, seq, n + k))
        seq += 1
    last = t0
    while heap:
        _, _, kk = heapq.heappop(heap)
        p.stdin.write(json.dumps({"id": take_id(kk), "spec": {"prompt": "x", "duration": 0.5, "seed": kk},
                                  "dir": str(folder)}) + "\n")
        p.stdin.flush()
        json.loads(p.stdout.readline())
        last = json.loads(p.stdout.readline())["t"]
    p.stdin.close()
    p.wait(10)
    return {"submit_to_started_ms": pct(lat), "jobs_per_s": round(n / (last - t0), 1)}


# ---------------------------------------------------------------------------- redis
class Host:
    def __init__(self, cfg, folder: Path) -> None:
        from jackgen.common.media import MediaPolicy

        self.cfg, self.session = cfg, "bench"
        self.session_dir = cfg.session_dir("bench")
        self.media = MediaPolicy.for_session(self.session_dir, cfg.control.sessions_dir)
        self.sample_rate, self.rings, self.tracks, self.streams, self.rings_id = 0, None, [], {}, ""


def start_redis(folder: Path) -> tuple[subprocess.Popen, str]:
    from jackgen.daemon.jobs.redisserver import wait_until_answers

    sock = folder / "redis.sock"
    p = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", str(sock), "--dir", str(folder),
                          "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--loglevel", "warning"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_until_answers(sock, 10)
    return p, f"unix://{sock}"


async def bench_redis_async(n: int, folder: Path, url: str) -> dict:
    from jackgen.daemon.config import load_config
    from jackgen.daemon.jobs.board import JobBoard

    cfg_path = folder / "bench.toml"
    cfg_path.write_text(f'instance = "bench"\n[control]\nsessions_dir = "{folder / "sessions"}"\n'
                        f'[redis]\nurl = "{url}"\n[generators]\nmax_jobs_kept = 1000000\n')
    cfg = load_config(cfg_path)
    board = JobBoard(Host(cfg, folder), url, embedded=False)
    await board.ensure_groups()
    started: dict[str, float] = {}
    done: dict[str, float] = {}
    got = asyncio.Event()

    def listen(view, e) -> None:
        if e["event"] == "started":
            started[view.id] = time.time()
            got.set()
        elif e["event"] == "done":
            done[view.id] = time.time()
            got.set()

    board.listeners.append(listen)
    board.start()
    log = open(folder / "worker.log", "ab")
    w = subprocess.Popen([sys.executable, "-m", "jackgen.daemon.cli", "worker", "procedural", "--config",
                          str(cfg_path)], stdout=log, stderr=subprocess.STDOUT)
    while not await board.workers():
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    lat = []
    for k in range(n):
        t0 = time.time()
        jid = (await board.submit({"prompt": "x", "duration": 0.5, "seed": k}))["job_id"]
        while jid not in done:
            got.clear()
            try:
                await asyncio.wait_for(got.wait(), 30)
            except asyncio.TimeoutError:
                raise RuntimeError(f"job {jid} never reported done: {await board.get(jid)}") from None
        lat.append((started[jid] - t0) * 1000)
    t0 = time.time()
    ids = [(await board.submit({"prompt": "x", "duration": 0.5, "seed": k}))["job_id"] for k in range(n)]
    while not all(j in done for j in ids):
        got.clear()
        try:
            await asyncio.wait_for(got.wait(), 30)
        except asyncio.TimeoutError:
            missing = [j for j in ids if j not in done]
            raise RuntimeError(f"{len(missing)} jobs never reported done, e.g. {missing[:3]}: "
                               f"{[await board.get(j) for j in missing[:1]]}") from None
    rate = n / (max(done[j] for j in ids) - t0)
    w.terminate()
    w.wait(10)
    await board.stop()
    return {"submit_to_started_ms": pct(lat), "jobs_per_s": round(rate, 1)}


# ---------------------------------------------------------------------------- relay
SENDERS = r"""
import sys, threading, time
import numpy as np
import redis
from jackgen.generators.relay import encode_chunk
url, streams, seconds, rate, chunk, t_start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
def sender(s):
    r = redis.Redis.from_url(url)
    key = f"jackgen:bench:audio:s{s}:1"
    frames = np.random.default_rng(s).standard_normal((chunk, 2)).astype(np.float32) * 0.1
    for k in range(int(seconds * rate / chunk)):
        due = t_start + k * chunk / rate
        while (d := due - time.time()) > 0:
            time.sleep(min(d, 0.002))
        r.xadd(key, encode_chunk(k * chunk, frames, rate))
    r.xadd(key, {"eos": 1})
ts = [threading.Thread(target=sender, args=(s,)) for s in range(streams)]
[t.start() for t in ts]; [t.join() for t in ts]
"""


def bench_relay(url: str, streams: int, seconds: float, rate: int = 48000, chunk: int = 1024,
                prefill_s: float = 0.1) -> dict:
    """Senders in another process (as remote workers are), readers here as in the relay."""
    import redis

    from jackgen.generators.relay import relay_chunks

    lat: list[float] = []
    late = [0]
    counters: list[dict] = [{} for _ in range(streams)]
    t_start = time.time() + 1.0
    lock = threading.Lock()
    r0 = redis.Redis.from_url(url)
    for s in range(streams):
        r0.delete(f"jackgen:bench:audio:s{s}:1")

    def reader(s: int) -> None:
        r = redis.Redis.from_url(url)
        key = f"jackgen:bench:audio:s{s}:1"
        pos = 0
        t_play = None  # the engine starts the track once the prefill is in the ring
        prefill = int(prefill_s * rate)

        def seen(dt: float) -> None:
            with lock:
                lat.append(dt * 1000)

        for a, last in relay_chunks(r, key, rate, counters[s], lambda: False, observe=seen):
            now = time.time()
            if a.shape[0]:
                if t_play is None and pos + a.shape[0] >= prefill:
                    t_play = now
                elif t_play is not None and now > t_play + pos / rate:  # frame pos plays at t_play + pos/rate
                    late[0] += 1  # the engine wanted these frames before they came
                pos += a.shape[0]
            if last:
                return

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(streams)]
    for t in threads:
        t.start()
    snd = subprocess.Popen([sys.executable, "-c", SENDERS, url, str(streams), str(seconds), str(rate), str(chunk),
                            repr(t_start)])
    for t in threads:
        t.join()
    snd.wait(30)
    gaps = sum(c.get("gaps", 0) for c in counters)
    return {"streams": streams, "channels": 2, "seconds": seconds, "chunk_frames": chunk,
            "latency_ms": pct(lat), "gaps": gaps, "bad_entries": sum(c.get("bad", 0) for c in counters),
            "underruns": late[0]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--streams", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="jackgen-bench-jobs-") as tmp:
        folder = Path(tmp)
        (folder / "mem").mkdir()
        print(f"memory: {a.jobs} jobs …", flush=True)
        mem = bench_memory(a.jobs, folder / "mem")
        rp, url = start_redis(folder)
        try:
            print(f"redis: {a.jobs} jobs …", flush=True)
            red = asyncio.run(bench_redis_async(a.jobs, folder, url))
            print(f"relay: {a.streams} streams × {a.seconds:.0f} s …", flush=True)
            relay = bench_relay(url, a.streams, a.seconds)
        finally:
            rp.terminate()
            rp.wait(10)
    out = {
        "machine": machine(), "jobs": a.jobs, "job_seconds": 0.5, "memory": mem, "redis": red,
        "ratio": {"submit_to_started_p50": round(red["submit_to_started_ms"]["p50"] /
                                                 mem["submit_to_started_ms"]["p50"], 2),
                  "submit_to_started_p99": round(red["submit_to_started_ms"]["p99"] /
                                                 mem["submit_to_started_ms"]["p99"], 2),
                  "jobs_per_s": round(red["jobs_per_s"] / mem["jobs_per_s"], 3)},
        "relay": relay,
    }
    report(a.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Engine benchmark: 16 tracks streaming through the engine + mastering, under load.

    bench/engine.py --tracks 16 --frames 256 --seconds 60 --json OUT

One run, one JACK server (``jackd -R -P 70 -d dummy``, SCHED_FIFO), a busy loop
pinned to one core the whole time, and two phases of ``--seconds`` each:

1. baseline: a C client (``jack_simple_client``, a sine to two ports) alone;
2. jackgen: the real engine process with ``--tracks`` rings kept full by a
   producer process, all tracks playing into the master limiter.

An observer client counts the server's xruns in both phases, so the engine's
xruns stand beside the C client's from the same run and machine. Callback times
come from the engine's own histogram (1 µs buckets). Writes JSON:

    {machine, frames, rate, tracks, seconds, period_us, xruns, underruns,
     callback_us: {p50, p99, p999, max}, callback_load_p999, baseline: {...}}
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import jack
import numpy as np

from jackgen.bridge import schema as S
from jackgen.bridge.instance import InstanceRings
from jackgen.daemon.cli.jackserver import DummyJack


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    virt = subprocess.run(["systemd-detect-virt"], capture_output=True, text=True).stdout.strip() if shutil.which(
        "systemd-detect-virt") else ""
    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "arch": platform.machine(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "virtualization": virt or "unknown",
        "hostname": platform.node(),
    }


def busy_loop(cpu: int) -> None:  # child process
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError:
        pass
    x = 0
    while True:
        x += 1


CHAIN = (("ZamCompX2", {"threshold_db": -20.0}), ("ZamEQ2", {}), ("Limiter", {"threshold_db": -3.0}))


def producer(instance: str, tracks: int, stop_at: float, chains: bool = False,
             lead_ms: float = 50.0) -> None:  # child process
    rings = InstanceRings.attach(instance, timeout_s=10)
    rng = np.random.default_rng(1)
    # 16 tracks of noise at -20 dBFS peak: the sum reaches the limiter now and then
    src = rng.uniform(-0.1, 0.1, (1 << 16, 2)).astype(np.float32)
    stages = None
    lead = int(lead_ms * 1e-3 * 48000)  # plugins.lead_ms: how far ahead a chained track is kept
    if chains:  # what the feeder does for a chained track: the chain runs just ahead of the playhead
        from jackgen.plugins.isolate import instantiate
        from jackgen.plugins.chainstage import ChainStage

        states = [instantiate(n, p)["state"] for n, p in CHAIN]
        stages = [ChainStage(states, 48000) for _ in range(tracks)]
    for t in range(tracks):
        rings.tracks[t].begin_stream(1, 48000)
    pos = [0] * tracks
    while time.monotonic() < stop_at:
        for t in range(tracks):
            ring = rings.tracks[t]
            space = ring.space() if stages is None else max(0, lead - ring.available()) // 256 * 256
            while space > 0:
                n = min(space, len(src) - pos[t])
                block = src[pos[t] : pos[t] + n]
                ring.write(block if stages is None else stages[t].process(block))
                pos[t] = (pos[t] + n) % len(src)
                space -= n
        time.sleep(0.002 if stages else 0.005)


def send_master_chain(instance: str, rings) -> None:
    """What control does for `jackgen chain master add`: the states in the shared file, then the command."""
    from jackgen.daemon.engine.masterchain import chain_file
    from jackgen.plugins.isolate import instantiate

    states = [instantiate(n, p)["state"] for n, p in CHAIN]
    chain_file(instance).write_text(json.dumps({"gen": 1, "chain": states}))
    rings.commands.put(S.pack(S.CMD_MASTER_CHAIN, 1))


class XrunObserver:
    def __init__(self, server: str) -> None:
        self.count = 0
        self.client = jack.Client("bench-xrun-observer", no_start_server=True, servername=server)
        self.client.set_xrun_callback(self._xrun)
        self.client.activate()

    def _xrun(self, _delay: float) -> None:
        self.count += 1

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


def run(args: argparse.Namespace) -> dict:
    server_name = "jackgen-bench"  # fixed: see DummyJack on jack2's server registry
    rate = args.rate
    period_us = args.frames / rate * 1e6
    jackd = DummyJack(server_name, rate, args.frames, realtime=not args.no_realtime).start()
    env = dict(os.environ, JACK_DEFAULT_SERVER=server_name)
    os.environ["JACK_DEFAULT_SERVER"] = server_name
    procs: list = []
    rings = None
    instance = None
    result: dict = {}
    try:
        loader = mp.get_context("fork").Process(target=busy_loop, args=(os.cpu_count() - 1,), daemon=True)
        loader.start()
        procs.append(loader)
        observer = XrunObserver(server_name)
        time.sleep(1.0)

        # ---- phase 1: C client baseline
        observer.count = 0
        c_client = subprocess.Popen(["jack_simple_client"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        time.sleep(1.0)
        base0 = observer.count
        time.sleep(args.seconds)
        base_xruns = observer.count - base0
        c_client.send_signal(signal.SIGINT)
        try:
            c_client.wait(5)
        except subprocess.TimeoutExpired:
            c_client.kill()
        time.sleep(0.5)

        # ---- phase 2: the jackgen engine
        instance = f"bench{uuid.uuid4().hex[:6]}"
        rings = InstanceRings.create(instance, 1 << 15)
        stop_at = time.monotonic() + args.seconds + 30
        prod = mp.get_context("fork").Process(target=producer, args=(instance, args.tracks, stop_at, args.chains, args.lead_ms),
                                              daemon=True)
        prod.start()
        procs.append(prod)
        stats_path = Path(tempfile.mkdtemp()) / "engine-stats.json"
        engine = subprocess.Popen(
            [sys.executable, "-m", "jackgen.daemon.cli", "engine", "--instance", instance, "--stats-out", str(stats_path)],
            env=env, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + 20
        hello = False
        while not hello and time.monotonic() < deadline:
            while (raw := rings.events.get()) is not None:
                hello = hello or S.unpack(raw)[0] == S.EVT_HELLO
            time.sleep(0.05)
        if not hello:
            raise RuntimeError("engine did not start: " + (engine.stderr.read() if engine.poll() is not None else ""))
        deadline = time.monotonic() + 120  # the producer loads its plugins first (--chains: seconds)
        while time.monotonic() < deadline and not all(rings.tracks[t].available() >= 256 for t in range(args.tracks)):
            time.sleep(0.05)
        time.sleep(0.5)  # rings primed
        for t in range(args.tracks):
            rings.commands.put(S.pack(S.CMD_PLAY, t, 1, 0, 0))
        time.sleep(1.0)  # settle; the histogram covers this second too
        x0 = observer.count
        t0 = time.monotonic()
        master = None
        while time.monotonic() - t0 < args.seconds:
            if args.master_chain and master is None and time.monotonic() - t0 > min(5.0, args.seconds / 4):
                master = {"plugins": [n for n, _ in CHAIN], "xruns_before": observer.count - x0}
                load_t0 = time.monotonic()
                send_master_chain(instance, rings)
            while (raw := rings.events.get()) is not None:
                e = S.unpack(raw)
                if master is not None and e[0] == S.EVT_MASTER_CHAIN:
                    master.update(ok=bool(e[2]), error=e[4] or None, load_s=round(time.monotonic() - load_t0, 3))
                    master["xruns_while_loading"] = observer.count - x0 - master["xruns_before"]
                    master["xruns_before"] = None
                    x_loaded = observer.count
            time.sleep(0.05)
        eng_xruns = observer.count - x0
        if master is not None and "ok" in master:
            master["xruns_after_loading"] = observer.count - x_loaded
            del master["xruns_before"]
        engine.send_signal(signal.SIGTERM)
        engine.wait(15)
        stats = json.loads(stats_path.read_text())
        observer.close()
        cb = stats["callback_us"]
        result = {
            "machine": machine(),
            "frames": args.frames,
            "rate": rate,
            "tracks": args.tracks,
            "seconds": args.seconds,
            "period_us": round(period_us, 1),
            "realtime": not args.no_realtime,
            "load": "busy loop pinned to the last core",
            "xruns": eng_xruns,
            "underruns": stats["underruns"],
            "callback_errors": stats["callback_errors"],
            "callback_us": cb,
            "callback_load_p999": round(cb["p999"] / period_us, 4),
            "blocks": stats["blocks"],
            "baseline": {"client": "jack_simple_client (C)", "xruns": base_xruns, "seconds": args.seconds},
            "chains": [n for n, _ in CHAIN] if args.chains else None,
            "chain_lead_ms": args.lead_ms if args.chains else None,
            "master_chain": master,
        }
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
        if rings is not None:
            rings.close(unlink=True)
        if instance is not None:
            from jackgen.bridge.crumb import crumb_file
            from jackgen.daemon.engine.masterchain import chain_file

            for f in (chain_file(instance), crumb_file(instance)):
                f.unlink(missing_ok=True)
        jackd.stop()
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracks", type=int, default=16, help="tracks streaming (1-16)")
    ap.add_argument("--frames", type=int, default=256, help="JACK period in frames")
    ap.add_argument("--rate", type=int, default=48000)
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each phase")
    ap.add_argument("--no-realtime", action="store_true", help="run jackd without SCHED_FIFO")
    ap.add_argument("--chains", action="store_true",
                    help="each track through ZamCompX2 + ZamEQ2 + Limiter in the producer, --lead-ms ahead")
    ap.add_argument("--master-chain", action="store_true",
                    help="load ZamCompX2 + ZamEQ2 + Limiter on the master, in the engine, 5 s into the run")
    ap.add_argument("--lead-ms", type=float, default=50.0, help="with --chains: how far ahead the producer runs")
    ap.add_argument("--json", type=str, default=None, help="write the result here")
    args = ap.parse_args()
    if not 1 <= args.tracks <= 16:
        ap.error("--tracks must be 1..16")
    res = run(args)
    cb = res["callback_us"]
    print(f"jackgen engine bench on {res['machine']['cpu']} ({res['machine']['cores']} cores, "
          f"{res['machine']['virtualization']})")
    print(f"{'frames':>7} {'period µs':>10} {'xruns':>6} {'C xruns':>8} {'underruns':>9} "
          f"{'p50':>6} {'p99':>6} {'p99.9':>6} {'max':>6} {'p99.9/period':>12}")
    print(f"{res['frames']:>7} {res['period_us']:>10.0f} {res['xruns']:>6} {res['baseline']['xruns']:>8} "
          f"{res['underruns']:>9} {cb['p50']:>6.0f} {cb['p99']:>6.0f} {cb['p999']:>6.0f} {cb['max']:>6.0f} "
          f"{res['callback_load_p999'] * 100:>11.1f}%")
    if res["master_chain"]:
        print("master chain:", res["master_chain"])
    if args.json:
        write_json(args.json, res)
    return 0


def write_json(path: str, data: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=2))


def report(path: str, data: dict) -> None:
    """Write the JSON and print it as a two-column table (all but the machine)."""
    write_json(path, data)
    width = max(len(k) for k in data) + 2
    for k, v in data.items():
        if k != "machine":
            print(f"{k:>{width}}: {v}")


if __name__ == "__main__":
    sys.exit(main())

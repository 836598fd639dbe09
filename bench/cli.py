#!/usr/bin/env python3
"""How long a `jackgen` command takes to start and act, against a running jackgen.

    bench/cli.py [--runs 15] --json OUT

One run, one dummy-backend jackd and a real ``jackgen run``. Each command is timed end to end
(process start to exit, wall clock) ``--runs`` times, alternating, and reported as p50/p90 ms:

- ``python -c pass``: the interpreter's own start (with this venv's site), the floor;
- ``jackgen --help``;
- ``jackgen status --json`` and ``jackgen gain 1 -6``: a remote command, HTTP round trip included;
- ``import everything``: the interpreter importing the control, engine and front-end modules,
  which is what a remote command cost before they were loaded lazily.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.control import _get, free_port, stop, wait_for  # noqa: E402
from bench.engine import machine, write_json  # noqa: E402
from jackgen.daemon.cli.jackserver import DummyJack  # noqa: E402

SERVER = "jackgen-bench"
JACKGEN = str(Path(sys.executable).with_name("jackgen"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="jackgen-bench-cli-"))
    http_port = free_port()
    cfg = tmp / "bench.toml"
    cfg.write_text(f'instance = "benchcli"\n[jack]\nautoconnect_master = false\n[control]\nhttp_port = {http_port}\n'
                   f'osc_port = 0\nsessions_dir = "{tmp}/sessions"\nmidi_api = "none"\n'
                   '[generators]\nworkers = []\n')
    # as on a user's machine, compiled modules are cached (this workplace sets PYTHONDONTWRITEBYTECODE,
    # which would make every run compile jackgen's own modules again); the first round warms the cache
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update({"JACK_DEFAULT_SERVER": SERVER, "JACKGEN_CONFIG": str(cfg)})
    jackd = DummyJack(SERVER, 48000, 512, realtime=False).start()
    os.environ["JACK_DEFAULT_SERVER"] = SERVER
    jg = subprocess.Popen([sys.executable, "-m", "jackgen.daemon.cli", "run", "--config", str(cfg)], env=env,
                          stdout=open(tmp / "jackgen.log", "wb"), stderr=subprocess.STDOUT)
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "jackgen --help": [JACKGEN, "--help"],
        "jackgen status --json": [JACKGEN, "status", "--json"],
        "jackgen gain 1 -6": [JACKGEN, "gain", "1", "-6"],
        "import everything": [sys.executable, "-c", "import jackgen.daemon.cli.main, jackgen.daemon.service, "
                              "jackgen.daemon.frontends.http, jackgen.daemon.frontends.osc, "
                              "jackgen.daemon.engine.driver"],
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    try:
        wait_for(lambda: _get(f"http://127.0.0.1:{http_port}", "/health").get("jack"), 30, 0.1)
        for name, argv in cases.items():
            subprocess.run(argv, env=env, capture_output=True, cwd=tmp)  # warm-up: writes the bytecode cache
        for _ in range(args.runs):
            for name, argv in cases.items():
                t0 = time.perf_counter()
                r = subprocess.run(argv, env=env, capture_output=True, cwd=tmp)
                times[name].append((time.perf_counter() - t0) * 1e3)
                if r.returncode != 0:
                    raise SystemExit(f"{name} failed ({r.returncode}): {r.stderr.decode()[-500:]}")
    finally:
        stop(jg)
        jackd.stop()
    res = {"machine": machine(), "runs": args.runs, "bytecode_cached": True,
           "ms": {k: {"p50": round(float(np.percentile(v, 50)), 1), "p90": round(float(np.percentile(v, 90)), 1)}
                  for k, v in times.items()}}
    floor = res["ms"]["python -c pass"]["p50"]
    res["over_interpreter_start_ms"] = {k: round(v["p50"] - floor, 1) for k, v in res["ms"].items()}
    print(f"jackgen CLI start on {res['machine']['cpu']} ({res['machine']['cores']} cores), {args.runs} runs each")
    for k, v in res["ms"].items():
        print(f"  {k:24s} p50 {v['p50']:7.1f} ms   p90 {v['p90']:7.1f} ms   (+{res['over_interpreter_start_ms'][k]} "
              "over the interpreter)")
    if args.json:
        write_json(args.json, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Bounce speed: a 16-track session, each track with a 3-plugin chain, rendered offline.

    bench/bounce.py [--tracks 16] [--seconds 20] --json OUT

Runs ``jackgen bounce``'s function twice in one process on the same clips: with
each track's chain (ZamCompX2, ZamEQ2 as dual mono, Limiter) and without chains,
and reports both as × real time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.engine import machine, write_json  # noqa: E402
from jackgen.daemon.cli.bounce import bounce  # noqa: E402
from jackgen.daemon.config import load_config  # noqa: E402
from jackgen.plugins.isolate import instantiate  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracks", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="jackgen-bench-bounce-"))
    cfg = load_config(None, {"control.sessions_dir": str(tmp)})
    rng = np.random.default_rng(0)
    chain = [{**instantiate(n, p)["state"]} for n, p in
             (("ZamCompX2", {"threshold_db": -20.0}), ("ZamEQ2", {}), ("Limiter", {"threshold_db": -3.0}))]
    res: dict = {"machine": machine(), "tracks": a.tracks, "seconds": a.seconds, "chain": [c["name"] for c in chain]}
    for label, with_chain in (("chains", True), ("no_chains", False)):
        tracks = []
        for t in range(a.tracks):
            f = tmp / f"clip{t}.wav"
            if not f.exists():
                sf.write(str(f), (0.1 * rng.standard_normal((int(a.seconds * 48000), 2))).astype(np.float32), 48000)
            tracks.append({"gain_db": -12.0, "pan": 0.0, "mute": False, "solo": False, "armed": str(f),
                           "chain": chain if with_chain else []})
        sess = tmp / label
        sess.mkdir(exist_ok=True)
        (sess / "session.json").write_text(json.dumps({"version": 1, "tracks": tracks}))
        info = bounce(cfg, label, str(tmp / f"{label}.wav"), "32f", tail_s=0.0)
        res[label] = {"render_s": info["render_s"], "realtime_factor": info["realtime_factor"]}
        print(f"{label:>10}: {info['seconds']:.1f} s in {info['render_s']:.2f} s = {info['realtime_factor']}x real time")
    res["chain_cost_ratio"] = res["chains"]["render_s"] / res["no_chains"]["render_s"]
    write_json(a.json, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""Plugin-chain cost: what running pedalboard chains block by block would cost a JACK period.

    bench/chains.py [--tracks 16] [--frames 256] [--seconds 20] --json OUT

Builds ``--tracks`` chains of three plugins each — ZamCompX2 (stereo VST3),
ZamEQ2 (mono VST3, so dual mono) and pedalboard's Limiter — and, in one run:

1. processes ``--seconds`` of audio through all chains block by block, as a
   callback would, timing each block (all tracks): p50/p99/p99.9/max, as a share
   of the period; and the memory pedalboard allocates per block (tracemalloc:
   it returns a new array per call);
2. processes the same audio through the same chains offline (one call per
   track on the whole buffer) — the ratio is what block-wise costs over offline.

No JACK here: this measures the chains themselves, which is what decides whether
they may run inside the process callback (issue 6).
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.engine import machine, report  # noqa: E402
from jackgen.plugins.host import Chain  # noqa: E402

RATE = 48000.0


def build(tracks: int) -> list[Chain]:
    chains = []
    for _ in range(tracks):
        c = Chain(RATE)
        c.add("ZamCompX2", {"threshold_db": -20.0, "ratio": 4.0})
        c.add("ZamEQ2")
        c.add("Limiter", {"threshold_db": -3.0})
        chains.append(c)
    return chains


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracks", type=int, default=16)
    ap.add_argument("--frames", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    n = int(a.seconds * RATE) // a.frames * a.frames
    rng = np.random.default_rng(0)
    audio = [(0.2 * rng.standard_normal((2, n))).astype(np.float32) for _ in range(a.tracks)]
    chains = build(a.tracks)
    period_us = a.frames / RATE * 1e6
    for c, x in zip(chains, audio):  # warm-up: prepare at this block size
        c.process(x[:, : a.frames])

    times = np.empty(n // a.frames)
    for b in range(n // a.frames):
        s = b * a.frames
        t0 = time.perf_counter()
        for c, x in zip(chains, audio):
            c.process(x[:, s: s + a.frames])
        times[b] = time.perf_counter() - t0
    blockwise_s = float(times.sum())

    tracemalloc.start()
    snap0 = tracemalloc.take_snapshot()
    blocks = 200
    for b in range(blocks):
        for c, x in zip(chains, audio):
            c.process(x[:, b * a.frames: (b + 1) * a.frames])
    peak = tracemalloc.get_traced_memory()[1]
    snap1 = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(st.size_diff for st in snap1.compare_to(snap0, "filename"))

    offline = build(a.tracks)
    t0 = time.perf_counter()
    for c, x in zip(offline, audio):
        c.process(x)
    offline_s = time.perf_counter() - t0

    us = times * 1e6
    res = {
        "machine": machine(), "tracks": a.tracks, "frames": a.frames, "rate": RATE, "seconds": n / RATE,
        "chain": ["ZamCompX2", "ZamEQ2 (dual mono)", "Limiter"], "period_us": period_us,
        "block_us": {"p50": float(np.percentile(us, 50)), "p99": float(np.percentile(us, 99)),
                     "p999": float(np.percentile(us, 99.9)), "max": float(us.max())},
        "block_share_of_period_p999": float(np.percentile(us, 99.9) / period_us),
        "blockwise_s": blockwise_s, "offline_s": offline_s, "blockwise_vs_offline": blockwise_s / offline_s,
        "realtime_factor_blockwise": (n / RATE) / blockwise_s,
        "alloc_peak_bytes_per_block_window": int(peak), "alloc_retained_bytes_after_200_blocks": int(grown),
    }
    report(a.json, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""Instruments: what synthv1 playing 8-voice chords costs, in jackgen's producer and live in JACK.

    bench/instruments.py [--frames 256] [--seconds 15] [--tracks 4,8,16] [--windows 2] --json OUT

In one run:

1. **Offline, one instrument**: synthv1 holding an 8-note chord, rendered block by block
   (``--frames``) through jackgen's path (``ChainStage``: Python per block, the MIDI sorted in,
   the block copied out) and through a bare C loop over the same instance (``jg_lv2_bench``: run()
   and the atom buffers reset, nothing else — what a C host such as jalv does per block), in
   alternating rounds. Both are × real time; the median of the per-round ratios is the host's
   overhead. The per-block cost (p50/p99/p99.9) is also
   given as a share of the period, times the track counts: the producer's load for N tracks.
2. **Live**: jackd (real-time when allowed, dummy backend, ``--frames``), ``jackgen run``, and N
   tracks (``--tracks``) each with synthv1 playing a MIDI file of 8-voice chords (one chord a beat,
   each held a beat). Windows alternate: jack_simple_client alone, then jackgen with N tracks,
   ``--windows`` times each, ``--seconds`` each; the same xrun observer counts both. Reports xruns per
   window and their sum beside the C client's, jackgen's underruns, and the feeder's CPU share.

Why the producer and not the callback (the numbers this bench prints are the reason): an instrument
heads a chain whose effects run in the producer, so running it in the callback would split the
chain across two threads; and one synthv1 at 8 voices costs tens of µs a block in C already, which
16 tracks would put into every period, where the producer spreads it over the other core.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.engine import XrunObserver, machine, report  # noqa: E402

SYNTHV1 = "http://synthv1.sourceforge.net/lv2"
CHORD = [48, 55, 60, 64, 67, 71, 74, 79]  # 8 voices
RATE = 48000


def chords_midi(path: Path, seconds: float, bpm: float = 120.0) -> None:
    import mido

    mid = mido.MidiFile(ticks_per_beat=480)
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    tr.append(mido.MetaMessage("set_tempo", tempo=int(60e6 / bpm)))
    for b in range(int(seconds * bpm / 60)):
        shift = (0, 5, 7, 3)[b % 4]
        for i, n in enumerate(CHORD):
            tr.append(mido.Message("note_on", note=n + shift, velocity=90, time=0))
        for i, n in enumerate(CHORD):
            tr.append(mido.Message("note_off", note=n + shift, velocity=0, time=470 if i == 0 else 0))
        tr.append(mido.MetaMessage("marker", text="", time=10))
    mid.save(str(path))


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def offline(frames: int, seconds: float) -> dict:
    from jackgen.plugins.chainstage import ChainStage
    from jackgen.plugins.isolate import instantiate
    from jackgen.plugins.lv2 import Lv2Plugin

    state = instantiate(SYNTHV1)["state"]
    chord = [(0, bytes([0x90, n, 90])) for n in CHORD]
    rounds = 8
    per_round = max(1, int(seconds * RATE / frames / rounds))
    z = np.zeros((frames, 2), dtype=np.float32)
    # jackgen's path: the ChainStage a track's producer runs, a block at a time …
    stage = ChainStage([state], RATE, block=frames)
    stage.process(z, midi=chord)
    # … and the same plugin, in a bare C loop over run(); the two alternate, a round each
    p = Lv2Plugin(SYNTHV1, RATE)
    p.process(np.zeros((2, frames), np.float32), chord)
    inst = p._insts[0]
    ffi, lib = inst.ffi, inst.lib
    ins = ffi.new("void*[]", [b for _q, b, _s in inst.atom_in] or [ffi.NULL])
    outs = ffi.new("void*[]", [b for _q, b, _s in inst.atom_out] or [ffi.NULL])
    per_block, ours_s, c_s, ratios = [], 0.0, 0.0, []
    for _r in range(rounds):
        t0 = time.perf_counter()
        for _ in range(per_round):
            a = time.perf_counter()
            stage.process(z)
            per_block.append(time.perf_counter() - a)
        ours = time.perf_counter() - t0
        c = lib.jg_lv2_bench(inst.h, per_round, frames, ins, len(inst.atom_in), 16384, outs, len(inst.atom_out))
        ours_s, c_s = ours_s + ours, c_s + c
        ratios.append(ours / c)
    blocks = rounds * per_round
    period = frames / RATE
    us = [x * 1e6 for x in per_block]
    audio_s = blocks * frames / RATE
    return {
        "plugin": SYNTHV1, "voices": len(CHORD), "frames": frames, "audio_s": round(audio_s, 2),
        "rounds": rounds, "jackgen_x_realtime": round(audio_s / ours_s, 1),
        "c_loop_x_realtime": round(audio_s / c_s, 1),
        "host_overhead_ratio": round(statistics.median(ratios), 3),
        "host_overhead_ratio_range": [round(min(ratios), 3), round(max(ratios), 3)],
        "c_run_us_per_block": round(c_s / blocks * 1e6, 1),
        "jackgen_us_per_block": {"p50": round(pct(us, 50), 1), "p99": round(pct(us, 99), 1),
                                 "p999": round(pct(us, 99.9), 1), "max": round(max(us), 1)},
        "producer_load_p50_by_tracks": {n: round(n * pct(per_block, 50) / period, 3) for n in (4, 8, 16)},
    }


def live(frames: int, seconds: float, track_counts: list[int], windows: int) -> dict:
    from bench.soak import Daemon
    from jackgen.daemon.cli.jackserver import DummyJack

    folder = Path(tempfile.mkdtemp(prefix="jackgen-bench-instruments-"))
    server = "jackgen-bench"
    os.environ["JACK_DEFAULT_SERVER"] = server
    try:
        jack = DummyJack(server, RATE, frames, realtime=True).start()
        rt = True
    except Exception:  # noqa: BLE001 (no SCHED_FIFO here)
        jack = DummyJack(server, RATE, frames, realtime=False).start()
        rt = False
    chords_midi(folder / "chords.mid", seconds + 10)
    d = Daemon(folder, frames, musicgen=False)
    env = dict(os.environ, JACK_DEFAULT_SERVER=server)
    out: dict = {"realtime_jackd": rt, "seconds_per_window": seconds, "windows": windows, "by_tracks": {}}
    try:
        d.start()
        observer = XrunObserver(server)
        for t in range(1, 17):
            d.api("POST", f"/api/tracks/{t}/chain/add", {"plugin": SYNTHV1})
        for n in track_counts:
            row = {"jackgen_xruns": [], "c_client_xruns": [], "underruns": 0, "feeder_cpu": []}
            for _w in range(windows):
                c = subprocess.Popen(["jack_simple_client"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env=env)
                time.sleep(1.0)
                x0 = observer.count
                time.sleep(seconds)
                row["c_client_xruns"].append(observer.count - x0)
                c.send_signal(signal.SIGINT)
                c.wait(5)
                u0 = (d.api("GET", "/api/status") or {}).get("underruns", 0)
                for t in range(1, n + 1):
                    d.api("POST", f"/api/tracks/{t}/play", {"file": str(folder / "chords.mid")})
                time.sleep(2.0)  # every track started
                feeder = d.processes().get("feeder")
                cpu0 = _cpu_s(feeder)
                x0 = observer.count
                time.sleep(seconds)
                row["jackgen_xruns"].append(observer.count - x0)
                row["feeder_cpu"].append(round((_cpu_s(feeder) - cpu0) / seconds, 3) if feeder else None)
                st = d.api("GET", "/api/status") or {}
                row["underruns"] += int(st.get("underruns", 0)) - int(u0)
                for t in range(1, n + 1):
                    d.api("POST", f"/api/tracks/{t}/stop", {})
                time.sleep(1.5)
            row["jackgen_xruns_total"] = sum(row["jackgen_xruns"])
            row["c_client_xruns_total"] = sum(row["c_client_xruns"])
            row["feeder_cpu_mean"] = round(statistics.mean(x for x in row["feeder_cpu"] if x is not None), 3)
            out["by_tracks"][n] = row
            print(f"{n:2d} tracks: jackgen xruns {row['jackgen_xruns']} (C client {row['c_client_xruns']}), "
                  f"underruns {row['underruns']}, feeder CPU {row['feeder_cpu_mean']:.0%}", file=sys.stderr)
        observer.close()
    finally:
        d.stop()
        jack.stop()
    return out


def _cpu_s(pid: int | None) -> float:
    if not pid:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--tracks", default="4,8,16")
    ap.add_argument("--windows", type=int, default=2)
    ap.add_argument("--no-live", action="store_true", help="only the offline part (no JACK)")
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    data = {"machine": machine(), "offline": offline(a.frames, max(10.0, a.seconds))}
    o = data["offline"]
    print(f"synthv1, 8 voices, {a.frames} frames: jackgen {o['jackgen_x_realtime']}x real time, bare C loop "
          f"{o['c_loop_x_realtime']}x (overhead {o['host_overhead_ratio']}x, median of {o['rounds']} alternating rounds, range {o['host_overhead_ratio_range']}); per block p50 "
          f"{o['jackgen_us_per_block']['p50']} us", file=sys.stderr)
    if not a.no_live:
        data["live"] = live(a.frames, a.seconds, [int(x) for x in a.tracks.split(",")], a.windows)
    report(a.json, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())

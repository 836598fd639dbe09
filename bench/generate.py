#!/usr/bin/env python3
"""Generation benchmark: time to first audio, real-time factor, total time, per backend.

    bench/generate.py --backend procedural|fluidsynth|musicgen [--tiny] [--shape small] [--device auto]
                      --seconds S --json OUT
    bench/generate.py --backend procedural --genres --seconds 30 --json OUT   # each genre in turn

In one process, with the backend loaded and warmed by one short job first (a
worker keeps its backend warm):

- ``ttfa_s``: from the call to the first audio chunk; ``rtf``: seconds of audio
  per second of wall time; ``total_s``.
- procedural also reports ``cold_ttfa_s`` (SoundFont load included).
- fluidsynth renders a procedural MIDI file and times the ``fluidsynth`` CLI on
  the same file in the same run (``cli_total_s``, ``speedup_vs_cli``).
- musicgen times the stock ``generate()`` on the same model, prompt, seed and
  settings (``stock_total_s``) and checks the streamed audio against it
  (``max_abs_diff_vs_stock``); ``--repeats N`` alternates N such pairs and reports
  medians. ``--tiny`` is the tests' model; otherwise a
  random-weight model with musicgen-small's shape (24 layers, dim 1024, 16 heads,
  2048 cards, 4 codebooks, 32 kHz EnCodec at 50 Hz), built in code.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.engine import machine, report  # noqa: E402
from jackgen.generators.backends import TakeContext, make_backend  # noqa: E402
from jackgen.generators.job import JobSpec  # noqa: E402


def timed(gen) -> tuple[float, float, int]:
    """(ttfa, total, frames of variation 0) for a backend.generate iterator."""
    t0 = time.perf_counter()
    ttfa = None
    frames = 0
    for k, chunk in gen:
        if ttfa is None:
            ttfa = time.perf_counter() - t0
        if k == 0:
            frames += chunk.shape[0]
    return ttfa or 0.0, time.perf_counter() - t0, frames


def bench_fluid(name: str, seconds: float) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="jackgen-bench-"))
    t0 = time.perf_counter()
    b = make_backend(name)
    b.load()
    cold_load = time.perf_counter() - t0
    spec = JobSpec.from_dict({"prompt": "lofi", "duration": seconds, "seed": 1, "style": "lofi"})
    timed(b.generate(spec.with_(duration_s=1.0), TakeContext(48000, tmp / "warm", ["w"])))  # warm-up
    out: dict = {"backend": name, "device": "cpu", "seconds": seconds, "soundfont_load_s": round(cold_load, 4)}
    if name == "procedural":
        ttfa, total, frames = timed(b.generate(spec, TakeContext(48000, tmp, ["t"])))
        out["cold_ttfa_s"] = round(cold_load + ttfa, 4)
    else:
        from jackgen.generators.clip import find_soundfont
        from jackgen.generators.compose import compose

        midi = compose("lofi", "A minor", 84, 1, seconds).write_stems(tmp / "stems")["full"]
        spec = spec.with_(midi=str(midi), backend="fluidsynth")
        ttfa, total, frames = timed(b.generate(spec, TakeContext(48000, tmp, ["t"])))
        t1 = time.perf_counter()
        subprocess.run(["fluidsynth", "-ni", "-q", "-F", str(tmp / "cli.wav"), "-r", "48000", find_soundfont(),
                        str(midi)], check=True, capture_output=True)
        cli = time.perf_counter() - t1
        out["cli_total_s"] = round(cli, 4)
        out["cold_total_s"] = round(cold_load + total, 4)
        out["speedup_vs_cli"] = round(cli / total, 2)
        out["cold_speedup_vs_cli"] = round(cli / (cold_load + total), 2)
        out["note"] = ("cli_total_s includes the CLI loading the SoundFont; total_s is warm (a worker loads it "
                       "once), cold_total_s adds our load")
    b.close()
    out.update(ttfa_s=round(ttfa, 4), total_s=round(total, 4), rtf=round(frames / 48000 / total, 2))
    return out


def bench_genres(seconds: float) -> dict:
    """Per genre, warm: time to first audio (compose, write full.mid, first 1024 frames) and real-time factor."""
    from jackgen.generators.vocab import GENRES

    tmp = Path(tempfile.mkdtemp(prefix="jackgen-bench-"))
    b = make_backend("procedural")
    b.load()
    warm = JobSpec.from_dict({"prompt": "", "duration": 1.0, "seed": 1})
    timed(b.generate(warm, TakeContext(48000, tmp / "warm", ["w"])))
    out: dict = {"backend": "procedural", "device": "cpu", "seconds": seconds, "genres": {}}
    for g in GENRES:
        spec = JobSpec.from_dict({"prompt": "", "duration": seconds, "seed": 1, "style": g})
        ttfa, total, frames = timed(b.generate(spec, TakeContext(48000, tmp / g, ["t"])))
        out["genres"][g] = {"ttfa_s": round(ttfa, 4), "total_s": round(total, 4),
                            "rtf": round(frames / 48000 / total, 2)}
        print(f"{g:10s} first audio {ttfa * 1000:6.1f} ms   {frames / 48000 / total:6.1f}x real time", flush=True)
    b.close()
    out["worst_ttfa_s"] = max(v["ttfa_s"] for v in out["genres"].values())
    out["worst_rtf"] = min(v["rtf"] for v in out["genres"].values())
    return out


def bench_musicgen(seconds: float, tiny: bool, shape: str, device: str, repeats: int = 1) -> dict:
    import torch
    from audiocraft.models import MusicGen

    from jackgen.generators.musicgen import MusicGenBackend, prompt_text, random_model, resolve_device

    shape = "tiny" if tiny else shape
    dev = resolve_device(device)
    lm, codec, _, _ = random_model(shape, 0, dev)
    model = MusicGen(f"random-{shape}", codec, lm, max_duration=30.0)
    b = MusicGenBackend(model=f"random-{shape}", device=dev, loaded=model)
    b.load()
    spec = JobSpec.from_dict({"prompt": "80s synthwave with punchy drums", "duration": seconds, "seed": 7,
                              "backend": "musicgen", "bpm": 110})
    list(b.stream(spec.with_(duration_s=0.5)))  # warm-up (kernels, caches)
    m = b.model

    def sync() -> None:
        if dev.startswith("cuda"):
            torch.cuda.synchronize()

    def run_stream():
        sync()
        t0 = time.perf_counter()
        ttfa = None
        parts = []
        for a in b.stream(spec):
            if ttfa is None:
                sync()
                ttfa = time.perf_counter() - t0
            parts.append(a)
        sync()
        return ttfa or 0.0, time.perf_counter() - t0, np.concatenate(parts, axis=-1)

    def run_stock():
        m.set_generation_params(use_sampling=True, top_k=spec.top_k, top_p=spec.top_p, temperature=spec.temperature,
                                duration=spec.duration_s, cfg_coef=spec.cfg_coef, extend_stride=18.0)
        torch.manual_seed(spec.seed)
        sync()
        t1 = time.perf_counter()
        with torch.no_grad():
            ref = m.generate([prompt_text(spec)]).float().cpu().numpy()
        sync()
        return time.perf_counter() - t1, ref

    # alternate the two, so drift in the machine's speed hits both alike
    runs = []
    for r in range(repeats):
        if r % 2 == 0:
            ttfa, total, streamed = run_stream()
            stock, ref = run_stock()
        else:
            stock, ref = run_stock()
            ttfa, total, streamed = run_stream()
        runs.append({"ttfa_s": round(ttfa, 4), "total_s": round(total, 3), "stock_total_s": round(stock, 3)})
    med = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
    n = min(ref.shape[-1], streamed.shape[-1])
    return {
        "backend": "musicgen", "device": dev if not dev.startswith("cuda") else torch.cuda.get_device_name(0),
        "dtype": b.dtype, "model_shape": shape, "seconds": seconds, "ttfa_s": round(med["ttfa_s"], 4),
        "rtf": round(streamed.shape[-1] / m.sample_rate / med["total_s"], 3), "total_s": round(med["total_s"], 3),
        "stock_total_s": round(med["stock_total_s"], 3),
        "streaming_vs_stock_throughput": round(float(np.median([r["stock_total_s"] / r["total_s"] for r in runs])), 3),
        "max_abs_diff_vs_stock": float(np.abs(streamed[..., :n] - ref[..., :n]).max()),
        "runs": runs, "chunk_s": b.chunk_s, "first_chunk_s": b.first_chunk_s,
        "params_m": round(sum(p.numel() for p in lm.parameters()) / 1e6, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=("procedural", "fluidsynth", "musicgen"), required=True)
    ap.add_argument("--genres", action="store_true", help="procedural: every genre in turn")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--tiny", action="store_true", help="musicgen: the tests' tiny model")
    ap.add_argument("--shape", default="small", choices=("small",), help="musicgen: random model of this shape")
    ap.add_argument("--device", default="auto", help="musicgen: auto | cpu | cuda")
    ap.add_argument("--repeats", type=int, default=1, help="musicgen: streamed/stock pairs, alternating; medians")
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    if a.backend == "musicgen":
        res = bench_musicgen(a.seconds, a.tiny, a.shape, a.device, max(1, a.repeats))
    elif a.genres:
        res = bench_genres(a.seconds)
    else:
        res = bench_fluid(a.backend, a.seconds)
    res["machine"] = machine()
    report(a.json, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""The library's speed: similar-prompt lookup, recall, inserts and filtered queries.

    bench/library.py [--sizes 10000,100000] [--queries 300] --json OUT

- **lookup**: the FAISS HNSW index jackgen uses against an exact numpy scan of the same vectors, side
  by side in one run, at each size: search alone p50/p99, and embedding + search (the numpy MiniLM,
  one prompt at a time, as a request does); recall@10 of the index against the exact scan.
- **vectors**: 4 000 real prompt embeddings (generated producer prompts through the model), and
  for the larger sizes each stored vector is one of those plus noise (σ 0.35 per component before
  normalising), so the neighbourhoods stay as crowded as real prompts make them. Queries are other
  real prompts (not stored).
- **inserts**: takes recorded through ``Library.add_take`` (files on disk, loudness, embedding, one
  commit each: what control does per take), and rows bulk-inserted (the generations table at 100k).
- **query**: the list filter a user runs (session + bpm range + style, newest first, a page of 50)
  over 100 000 rows on SQLite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def machine() -> dict:
    cpu = "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()}


def prompts(n: int, seed: int) -> list[str]:
    from tests.library_helpers import EXTRA, GENRES, MOODS, SOUNDS

    rng = random.Random(seed)
    tempo = ["", " at 90 bpm", " at 140 bpm", " at 174 bpm", " at 124 bpm", " half-time"]
    out = set()
    while len(out) < n:
        out.add(f"{rng.choice(MOODS)} {rng.choice(GENRES)} beat with {rng.choice(SOUNDS)} {rng.choice(EXTRA)}"
                f"{rng.choice(tempo)}")
    return sorted(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    import faiss

    from jackgen.daemon.library.embed import Embedder
    from jackgen.daemon.library.index import EF_SEARCH, new_hnsw

    emb = Embedder()
    t0 = time.perf_counter()
    base = emb.embed(prompts(4000, 1))
    embed_batch_s = time.perf_counter() - t0
    qtexts = prompts(4000 + a.queries, 2)[-a.queries:]
    rng = np.random.default_rng(3)
    out: dict = {"machine": machine(), "faiss": faiss.__version__, "index": "HNSW32, efConstruction 128, inner product",
                 "ef_search": EF_SEARCH,
                 "embed_4000_batched_s": round(embed_batch_s, 2), "sizes": {}}
    embed_one = []
    qvecs = []
    for q in qtexts:
        t = time.perf_counter()
        qvecs.append(emb.embed([q])[0])
        embed_one.append(time.perf_counter() - t)
    qvecs = np.stack(qvecs)
    for n in (int(s) for s in a.sizes.split(",")):
        if n <= len(base):
            data = base[:n].copy()
        else:
            pick = base[rng.integers(0, len(base), n)]
            data = pick + rng.normal(0, 0.35 / np.sqrt(384), pick.shape).astype(np.float32)
            data /= np.linalg.norm(data, axis=1, keepdims=True)
            data = data.astype(np.float32)
        idx = new_hnsw(384)
        t = time.perf_counter()
        idx.add_with_ids(data, np.arange(1, n + 1, dtype=np.int64))
        build_s = time.perf_counter() - t
        hnsw_t, exact_t, recall, exact_sets, found = [], [], [], [], []
        for q in qvecs:  # the index alone, query after query (as requests come) ...
            t = time.perf_counter()
            _, got = idx.search(q[None], 10)
            hnsw_t.append(time.perf_counter() - t)
            found.append(set(got[0]))
        for q, got in zip(qvecs, found):  # ... then the exact scan of the same vectors, in the same run
            t = time.perf_counter()
            scores = data @ q
            want = np.argpartition(-scores, 10)[:10] + 1
            exact_t.append(time.perf_counter() - t)
            recall.append(len(got & set(want)) / 10)
            exact_sets.append(set(want))
        sweep = {}
        base_idx = faiss.downcast_index(idx.index)
        for ef in (32, 64, 128, 192, 256):  # the index's one knob: recall against time
            base_idx.hnsw.efSearch = ef
            ts, rc = [], []
            for q, want in zip(qvecs, exact_sets):
                t = time.perf_counter()
                _, got = idx.search(q[None], 10)
                ts.append(time.perf_counter() - t)
                rc.append(len(set(got[0]) & want) / 10)
            sweep[str(ef)] = {"p50_ms": round(pct(ts, 0.5) * 1e3, 3), "p99_ms": round(pct(ts, 0.99) * 1e3, 3),
                              "recall_at_10": round(statistics.mean(rc), 4)}
        base_idx.hnsw.efSearch = EF_SEARCH
        both = [e + s for e, s in zip(embed_one, hnsw_t)]
        out["sizes"][str(n)] = {
            "build_s": round(build_s, 2),
            "hnsw_search_ms": {"p50": round(pct(hnsw_t, 0.5) * 1e3, 3), "p99": round(pct(hnsw_t, 0.99) * 1e3, 3)},
            "exact_scan_ms": {"p50": round(pct(exact_t, 0.5) * 1e3, 3), "p99": round(pct(exact_t, 0.99) * 1e3, 3)},
            "exact_over_hnsw_p50": round(pct(exact_t, 0.5) / pct(hnsw_t, 0.5), 1),
            "embed_plus_search_ms": {"p50": round(pct(both, 0.5) * 1e3, 2), "p99": round(pct(both, 0.99) * 1e3, 2)},
            "recall_at_10": round(statistics.mean(recall), 4),
            "ef_search_sweep": sweep,
        }
        print(f"{n:>7}: hnsw p50 {out['sizes'][str(n)]['hnsw_search_ms']['p50']} ms p99 "
              f"{out['sizes'][str(n)]['hnsw_search_ms']['p99']} ms, exact p50 "
              f"{out['sizes'][str(n)]['exact_scan_ms']['p50']} ms, recall@10 {out['sizes'][str(n)]['recall_at_10']}, "
              f"embed+search p99 {out['sizes'][str(n)]['embed_plus_search_ms']['p99']} ms", flush=True)
    out["embed_one_ms"] = {"p50": round(pct(embed_one, 0.5) * 1e3, 2), "p99": round(pct(embed_one, 0.99) * 1e3, 2)}
    out.update(db_bench(qtexts))
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(out, indent=2))
    print(json.dumps({k: v for k, v in out.items() if k != "sizes"}, indent=2))
    return 0


def db_bench(qtexts: list[str]) -> dict:
    from sqlalchemy import insert
    from sqlalchemy.orm import Session

    from jackgen.daemon.library.models import Generation, Project
    from jackgen.daemon.library.store import Filters, Library
    from tests.library_helpers import make_take

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        sessions = d / "sessions"
        files = [make_take(sessions, "bench", q, bpm=80 + i % 100, stems=False) for i, q in enumerate(qtexts[:200])]
        lib = Library(f"sqlite:///{d / 'lib.sqlite'}", d / "index", sessions)
        t = time.perf_counter()
        for f in files:
            lib.add_take(f)
        add_rate = len(files) / (time.perf_counter() - t)
        styles = ["trap", "drill", "house", "dnb", "boombap", "lofi"]
        with Session(lib.engine) as s:
            pid = s.query(Project.id).first()[0]
            other = Project(name="other", path=str(d), created_at=0)
            s.add(other)
            s.flush()
            rows = [{"take": f"20261101-{i // 3600:02d}{i // 60 % 60:02d}{i % 60:02d}-{i:06x}",
                     "project_id": pid if i % 2 else other.id, "prompt": qtexts[i % len(qtexts)], "backend": "procedural",
                     "bpm": 70.0 + i % 110, "style": styles[i % len(styles)], "key": "A minor", "params": {},
                     "timings": {}, "path": f"/x/{i}.wav", "meta": {}, "created_at": 1.7e9 + i} for i in range(100_000)]
            t = time.perf_counter()
            s.execute(insert(Generation), rows)
            s.commit()
            bulk_rate = len(rows) / (time.perf_counter() - t)
        times = []
        for i in range(50):
            t = time.perf_counter()
            total, page = lib.query(Filters(session="bench", bpm_min=120 + i % 10, bpm_max=140, style="trap"), limit=50)
            times.append(time.perf_counter() - t)
        lib.close()
    return {"add_take_per_s": round(add_rate, 1), "bulk_insert_rows_per_s": round(bulk_rate),
            "query_100k_ms": {"p50": round(pct(times, 0.5) * 1e3, 2), "p99": round(pct(times, 0.99) * 1e3, 2),
                              "rows_matched": total}}


if __name__ == "__main__":
    sys.exit(main())

"""The worker loop: takes on disk, cancel within one chunk, failures reported, never fatal."""

from __future__ import annotations

import threading

import numpy as np

from jackgen.generators.backends import Backend, FluidSynthBackend
from jackgen.generators.job import JobSpec
from jackgen.generators.worker import Worker


class Events:
    def __init__(self) -> None:
        self.items: list[dict] = []
        self.final = threading.Event()

    def __call__(self, m: dict) -> None:
        self.items.append(m)
        if m["event"] in ("done", "failed", "cancelled"):
            self.final.set()

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.items if e["event"] == kind]


def job(jid: str, tmp_path, **spec) -> dict:
    s = JobSpec.from_dict({"prompt": "x", "seed": 1, **spec})
    takes = [f"{jid}-{k}" for k in range(s.variations)]
    return {"op": "job", "id": jid, "spec": s.to_dict(), "takes": takes, "session_dir": str(tmp_path),
            "rate": 48000, "stream": None}


class Counting(Backend):
    """Endless chunks, counting how many were made after cancel was asked."""

    name = "counting"

    def __init__(self) -> None:
        self.after_cancel = 0
        self.cancel_seen = threading.Event()

    def generate(self, spec, ctx):
        while True:
            if self.cancel_seen.is_set():
                self.after_cancel += 1
            if ctx.should_stop():
                return
            yield 0, np.full((4096, 2), 0.1, np.float32)


def test_cancel_stops_within_one_chunk_and_leaves_no_take(tmp_path):
    b = Counting()
    ev = Events()
    w = Worker(b, None, ev)
    w.handle(job("j1", tmp_path))
    threading.Timer(0.2, lambda: (b.cancel_seen.set(), w.handle({"op": "cancel", "id": "j1"}))).start()
    assert ev.final.wait(10)
    assert ev.of("cancelled") and not ev.of("done")
    assert b.after_cancel <= 2  # the chunk in flight, then the check that stops it
    assert not list((tmp_path / "audio_gen").glob("*"))
    w.shutdown()


def test_failures_are_reported_and_the_worker_goes_on(tmp_path):
    b = FluidSynthBackend()
    ev = Events()
    w = Worker(b, None, ev)
    try:
        w.handle(job("bad", tmp_path, backend="fluidsynth", midi="missing.mid"))
        assert ev.final.wait(10)
        assert "does not exist" in ev.of("failed")[0]["message"]
        ev.final.clear()
        w.handle(job("good", tmp_path, duration=1.0, variations=2))
        assert ev.final.wait(20)
        done = ev.of("done")[0]
        assert [t["take"] for t in done["takes"]] == ["good-0", "good-1"]
        assert done["timings"]["first_audio_s"] <= done["timings"]["done_s"]
        assert ev.of("progress")[-1]["fraction"] == 1.0
    finally:
        w.shutdown()
        b.close()

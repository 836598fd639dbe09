"""The worker loop: takes on disk, cancel within one chunk, failures reported, never fatal."""

from __future__ import annotations

import threading

import numpy as np

from jackgen.generators.backends import Backend, FluidSynthBackend
from jackgen.generators.job import JobSpec
from jackgen.generators.worker import JobOrder, JobRunner


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


def order(jid: str, tmp_path, **spec) -> JobOrder:
    s = JobSpec.from_dict({"prompt": "x", "seed": 1, **spec})
    takes = [f"{jid}-{k}" for k in range(s.variations)]
    return JobOrder(jid, s, takes, tmp_path, 48000)


def run(runner: JobRunner, o: JobOrder, ev: Events, stop=lambda: False) -> dict | None:
    """One job as the queue worker runs it: result, then commit; the events it published."""
    try:
        result = runner.run(o, lambda e, f: ev({"event": e, **f}), stop)
    except Exception as e:
        ev({"event": "failed", "message": str(e)})
        return None
    if result.get("cancelled"):
        ev({"event": "cancelled"})
        return None
    out = runner.commit(o, result)
    ev({"event": "done", "takes": out, "timings": result["timings"]})
    return result


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
    runner = JobRunner({"counting": b}, ev)
    o = order("j1", tmp_path)
    o.spec = o.spec.with_(backend="procedural")
    runner.backends = {"procedural": b}
    cancel = threading.Event()
    threading.Timer(0.2, lambda: (b.cancel_seen.set(), cancel.set())).start()
    run(runner, o, ev, cancel.is_set)
    assert ev.of("cancelled") and not ev.of("done")
    assert b.after_cancel <= 2  # the chunk in flight, then the check that stops it
    assert not list((tmp_path / "audio_gen").glob("*"))  # not even a .part
    runner.shutdown()


def test_failures_are_reported_and_the_runner_goes_on(tmp_path):
    from jackgen.generators.backends import ProceduralBackend

    fluid, proc = FluidSynthBackend(), ProceduralBackend()
    ev = Events()
    runner = JobRunner({"fluidsynth": fluid, "procedural": proc}, ev)
    try:
        run(runner, order("bad", tmp_path, backend="fluidsynth", midi="missing.mid"), ev)
        assert "does not exist" in ev.of("failed")[0]["message"]
        run(runner, order("good", tmp_path, duration=1.0, variations=2), ev)
        done = ev.of("done")[0]
        assert [t["take"] for t in done["takes"]] == ["good-0", "good-1"]
        assert done["timings"]["first_audio_s"] <= done["timings"]["done_s"]
        assert ev.of("progress")[-1]["progress"] == 1.0
        assert ev.of("first-audio")
        assert sorted(p.name for p in (tmp_path / "audio_gen").iterdir()) == \
            ["good-0.json", "good-0.wav", "good-1.json", "good-1.wav"]  # no part file left
    finally:
        runner.shutdown()
        fluid.close()
        proc.close()


def test_max_speed_paces_rendering(tmp_path):
    import time

    from jackgen.generators.backends import ProceduralBackend

    proc = ProceduralBackend()
    ev = Events()
    runner = JobRunner({"procedural": proc}, ev, max_speed=4.0)
    t0 = time.perf_counter()
    run(runner, order("paced", tmp_path, duration=2.0), ev)
    assert time.perf_counter() - t0 >= 2.0 / 4.0 * 0.9  # 2 s of audio at most 4x real time
    assert ev.of("done")
    proc.close()

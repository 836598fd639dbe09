"""The producer-side chain stage: smooth live changes, timed changes on their frame, latency bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest

from jackgen.plugins.isolate import instantiate
from jackgen.plugins.chainstage import BLOCK, ChainStage

RATE = 48000


def sine(seconds: float, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    x = (level * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return np.stack([x, x], axis=1)


@pytest.fixture(scope="module")
def states():
    return {"gain": instantiate("Gain", {"gain_db": 0})["state"], "eq": instantiate("ZamEQ2")["state"]}


def run(stage: ChainStage, x: np.ndarray, changes: dict[int, list[dict]], chunk: int = 4096) -> np.ndarray:
    out = []
    for i in range(0, len(x), chunk):
        for c in changes.get(i, []):
            stage.submit(c)
            if c["kind"] == "chain":
                stage.prepare()  # what a producer does once its ring holds enough old-chain audio
        out.append(stage.process(x[i:i + chunk], last=i + chunk >= len(x)))
    return np.concatenate(out)


def test_live_changes_make_no_clicks_and_land(states):
    x = sine(2.0)
    st = ChainStage([states["gain"]], RATE)
    y = run(st, x, {16384: [{"kind": "chain", "chain": [states["gain"], states["eq"]]}],
                    24576: [{"kind": "param", "index": 0, "name": "gain_db", "value": -6.0}],
                    32768: [{"kind": "bypass", "index": 1, "on": True}]})
    assert y.shape == x.shape and not st.errors
    sine_step = np.abs(np.diff(x[:, 0])).max()
    assert np.abs(np.diff(y[:, 0])).max() < sine_step * 1.05  # a chain swap, a -6 dB glide, a bypass
    assert np.abs(y[:16000, 0]).max() == pytest.approx(0.3, rel=1e-3)
    assert np.abs(y[-9600:, 0]).max() == pytest.approx(0.15, rel=0.01)


def test_a_timed_change_lands_on_its_block(states):
    x = sine(1.0)
    at = 10 * BLOCK + 100
    st = ChainStage([states["gain"]], RATE)
    st.submit({"kind": "param", "index": 0, "name": "gain_db", "value": -96.0, "at": at})
    y = st.process(x, last=True)
    assert not st.errors
    start = (at // BLOCK) * BLOCK  # the glide starts with the block that holds the frame
    assert np.array_equal(y[:start], x[:start])
    assert np.abs(y[start: start + 64]).max() < 0.3 and np.abs(y[start + int(0.02 * RATE) + BLOCK:]).max() < 1e-5


def test_a_chain_that_fails_to_build_keeps_the_old_one_playing(states):
    x = sine(0.5)
    st = ChainStage([states["gain"]], RATE)
    y = run(st, x, {8192: [{"kind": "chain", "chain": [{"plugin": "/nowhere/Gone.vst3", "kind": "vst3"}]},
                           {"kind": "param", "index": 0, "name": "gain_db", "value": -6.0}]})
    assert st.errors and "Gone.vst3" in st.errors[0]
    assert np.abs(y[-4800:, 0]).max() == pytest.approx(0.15, rel=0.01)  # the waiting change still applied

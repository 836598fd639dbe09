"""The master chain as the engine runs it (MasterChain, its Loader), with real pedalboard plugins."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from jackgen.bridge import schema as S
from jackgen.daemon.engine.masterchain import Loader, MasterChain, chain_file
from jackgen.plugins.host import Chain

RATE = 48000
N = 256


class Events:
    def __init__(self):
        self.got = []

    def put(self, rec):
        self.got.append(S.unpack(rec))
        return True


def gain_chain(*dbs):
    c = Chain(RATE)
    for db in dbs:
        c.add("Gain", {"gain_db": db})
    return c


def block(level=0.5):
    return np.full((2, N), level, np.float32)


def test_a_new_chain_takes_over_with_a_one_block_crossfade_and_is_reported():
    mc, ev = MasterChain(RATE), Events()
    mc.incoming = (1, gain_chain(0.0))
    m = block()
    mc.process(m, ev)
    assert np.allclose(m, 0.5) and ev.got == [[S.EVT_MASTER_CHAIN, 1, 1, 0, ""]]
    mc.incoming = (2, gain_chain(-6.0206))
    m = block()
    mc.process(m, ev)
    w = (np.arange(N) + 0.5) / N
    np.testing.assert_allclose(m[0], 0.5 * (1 - w) + 0.25 * w, atol=1e-5)  # old -> new across the block
    m = block()
    mc.process(m, ev)
    assert np.allclose(m, 0.25, atol=1e-5) and mc.generation == 2
    assert len(mc.retired) == 1  # the old chain waits for the loader thread to destroy it


def test_parameters_glide_in_small_steps_and_stale_commands_are_ignored():
    mc, ev = MasterChain(RATE), Events()
    mc.incoming = (3, gain_chain(0.0))
    mc.process(block(), ev)
    mc.apply_param(3, 0, "gain_db", -12.0)
    mc.apply_param(2, 0, "gain_db", 6.0)  # meant for a chain that is gone
    out = []
    for _ in range(8):
        m = block()
        mc.process(m, ev)
        out.append(m[0].copy())
    y = np.concatenate(out)
    assert mc.stale == 1
    assert 0.45 < y[0] < 0.5 and y[-1] == pytest.approx(0.5 * 10 ** (-12 / 20), rel=1e-3)
    steps = 0.02 * RATE / 32  # 20 ms in 32-frame steps: -12 dB in 0.4 dB steps, none bigger
    assert np.abs(np.diff(y)).max() < 0.5 * (1 - 10 ** (-12 / steps * 1.2 / 20))
    assert (np.abs(np.diff(y)) > 1e-6).sum() > 20


def test_bypass_crossfades_and_a_failing_plugin_passes_the_block_dry():
    mc, ev = MasterChain(RATE), Events()
    mc.incoming = (1, gain_chain(-6.0206))
    mc.process(block(), ev)
    mc.apply_bypass(1, 0, True)
    m = block()
    mc.process(m, ev)
    assert m[0, 0] == pytest.approx(0.25, abs=1e-3) and m[0, -1] == pytest.approx(0.5, abs=1e-3)
    assert mc.chain.plugins[0].bypass
    seen = []
    p = mc.chain.plugins[0]
    p.bypass = False

    def spy(x, real=p.process):  # records which plugin the shared crumb names while it runs
        seen.append(int(mc.crumb[0]))
        return real(x)

    p.process = spy
    mc.process(block(), ev)
    assert seen == [1] and mc.crumb[0] == 0

    def broken(x):
        raise RuntimeError("plugin refused")

    p.process = broken
    m = block()
    mc.process(m, ev)
    assert np.allclose(m, 0.5) and mc.errors == 1 and mc.crumb[0] == 0


def test_the_loader_builds_what_control_wrote_and_reports_what_it_cannot(tmp_path):
    inst = f"unit-{time.monotonic_ns()}"
    path = chain_file(inst)
    mc, ev = MasterChain(RATE), Events()
    loader = Loader(mc, inst, (), lambda: N)
    loader.start()
    try:
        states = gain_chain(-6.0).state()
        path.write_text(json.dumps({"gen": 1, "chain": states}))
        mc.request(1)
        deadline = time.monotonic() + 10
        while mc.incoming is None and time.monotonic() < deadline:
            time.sleep(0.01)
        mc.process(block(), ev)  # the crossfade from dry
        m = block()
        mc.process(m, ev)
        assert mc.generation == 1 and np.allclose(m, 0.5 * 10 ** (-6 / 20), atol=1e-4)
        path.write_text(json.dumps({"gen": 2, "chain": [{"plugin": "NoSuchPlugin", "kind": "vst3"}]}))
        mc.request(2)
        while mc.failed is None and time.monotonic() < deadline:
            time.sleep(0.01)
        mc.process(block(), ev)
        assert ev.got[-1][:3] == [S.EVT_MASTER_CHAIN, 2, 0] and "NoSuchPlugin" in ev.got[-1][4]
        assert mc.generation == 1  # the old chain plays on
    finally:
        loader.close()
        loader.join(5)
        assert not loader.is_alive()
        path.unlink(missing_ok=True)

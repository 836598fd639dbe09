"""Plugins and chains with real VST3 (Debian zam-plugins) and pedalboard built-ins."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pedalboard
import pytest

from jackgen.plugins.host import Chain, Plugin, PluginError, on_loader

RATE = 48000.0


def signal(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    x = np.stack([0.5 * np.sin(2 * np.pi * 220 * t), 0.3 * np.sin(2 * np.pi * 330 * t)]) + 0.05 * rng.standard_normal((2, n))
    return x.astype(np.float32)


def blockwise(p, x: np.ndarray, block: int = 256) -> np.ndarray:
    return np.concatenate([p.process(x[:, i:i + block]) for i in range(0, x.shape[1], block)], axis=1)


def test_builtin_chain_equals_pedalboard_offline():
    x = signal()
    chain = Chain(RATE)
    chain.add("Compressor", {"threshold_db": -20, "ratio": 4, "attack_ms": 5, "release_ms": 50})
    chain.add("HighpassFilter", {"cutoff_frequency_hz": 120})
    got = blockwise(chain, x)
    ref = pedalboard.Pedalboard([pedalboard.Compressor(threshold_db=-20, ratio=4, attack_ms=5, release_ms=50),
                                 pedalboard.HighpassFilter(cutoff_frequency_hz=120)])(x, RATE)
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < 1e-5
    assert np.abs(got - x).max() > 0.01  # it did something


def test_stereo_vst3_by_name_equals_pedalboard_offline():
    x = signal()
    p = Plugin("ZamCompX2", RATE)
    assert p.kind == "vst3" and not p.dual_mono and p.path == "/usr/lib/vst3/ZamCompX2.vst3"
    p.set("threshold_db", -30.0)
    p.set("ratio", 8.0)
    p.reset()
    got = blockwise(p, x, 512)
    ref_plugin = on_loader(pedalboard.load_plugin, "/usr/lib/vst3/ZamCompX2.vst3")
    ref_plugin.threshold_db, ref_plugin.ratio = -30.0, 8.0
    ref = np.concatenate([ref_plugin.process(x[:, i:i + 512], RATE, reset=False)
                          for i in range(0, x.shape[1], 512)], axis=1)
    assert np.abs(got - ref).max() < 1e-6
    assert np.abs(got).max() < np.abs(x).max() * 0.9  # it compressed


def test_mono_vst3_on_stereo_runs_as_dual_mono():
    x = signal()
    p = Plugin("ZamComp", RATE)
    assert p.dual_mono
    p.set("threshold_db", -30.0)
    got = blockwise(p, x)
    for ch in (0, 1):
        ref_plugin = on_loader(pedalboard.load_plugin, "/usr/lib/vst3/ZamComp.vst3")
        ref_plugin.threshold_db = -30.0
        ref = np.concatenate([ref_plugin.process(x[ch:ch + 1, i:i + 256], RATE, reset=False)
                              for i in range(0, x.shape[1], 256)], axis=1)
        assert np.abs(got[ch] - ref[0]).max() < 1e-6


def test_state_round_trip_restores_the_sound():
    x = signal(0.5)
    p = Plugin("ZamCompX2", RATE)
    p.set("threshold_db", -25.0)
    p.set("attack_ms", 3.0)
    p.bypass = False
    state = json.loads(json.dumps(p.state()))  # it goes into session.json
    q = Plugin.from_state(state, RATE)
    assert q.get("threshold_db") == pytest.approx(-25.0, abs=0.1) and q.get("attack_ms") == pytest.approx(3.0, abs=0.1)
    p.reset()
    q.reset()
    # parameters travel as values and come back through the plugin's 0…1 normalisation: within 1e-4
    assert np.abs(blockwise(p, x) - blockwise(q, x)).max() < 1e-4
    c = Chain(RATE)
    c.add("Reverb", {"room_size": 0.8})
    c.add("ZamEQ2")
    c.set_bypass(1, True)
    c2 = Chain.from_state(json.loads(json.dumps(c.state())), RATE)
    assert [pl.name for pl in c2.plugins] == ["Reverb", "ZamEQ2"] and c2.plugins[1].bypass
    assert c2.plugins[0].get("room_size") == pytest.approx(0.8)


def test_bad_requests_say_what_exists_and_change_nothing(tmp_path):
    with pytest.raises(PluginError, match="no plugin named 'ZamNope'.*found: .*ZamCompX2"):
        Plugin("ZamNope", RATE)
    fake = tmp_path / "Fake.vst3"
    fake.mkdir()
    with pytest.raises(PluginError, match="outside the plugin folders"):  # plugins are code: folders only
        Plugin(str(fake), RATE)
    with pytest.raises(PluginError, match="could not be loaded as a VST3 plugin"):
        Plugin(str(fake), RATE, extra_dirs=[str(tmp_path)])
    with pytest.raises(PluginError, match="not a VST3 plugin"):
        Plugin(str(tmp_path / "x.wav"), RATE)
    c = Chain(RATE)
    c.add("Gain", {"gain_db": -6})
    with pytest.raises(PluginError, match="has no parameter 'treshold_db'; it has .*threshold_db"):
        c.add("ZamCompX2", {"treshold_db": -10})
    with pytest.raises(PluginError, match="from -80 to 0 dB"):
        c.add("ZamCompX2", {"threshold_db": 10})
    with pytest.raises(PluginError, match="must be a number"):
        c.set(0, "gain_db", "loud")
    with pytest.raises(PluginError, match="no plugin 3 in this chain: it has 1"):
        c.set_bypass(3, True)
    assert [p.name for p in c.plugins] == ["Gain"] and c.plugins[0].get("gain_db") == -6


def test_chain_order_and_bypass():
    x = signal(0.2)
    c = Chain(RATE)
    c.add("Gain", {"gain_db": -6})
    c.add("Clipping", {"threshold_db": -12})
    a = c.process(x.copy())
    c.move(1, 0)  # clip first, then -6 dB: a different signal
    b = c.process(x.copy())
    assert not np.allclose(a, b)
    c.set_bypass(0, True)
    c.set_bypass(1, True)
    assert np.array_equal(c.process(x), x)
    c.remove(0)
    assert [p.name for p in c.plugins] == ["Gain"]


def test_plugins_scan_and_list_cli(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "jackgen.daemon.cli", "plugins", "scan", "--json"], env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    found = {p["name"]: p for b in data["vst3"] for p in b["plugins"]}
    assert found["ZamCompX2"]["channels"] == 2 and found["ZamComp"]["channels"] == 1
    thr = next(p for p in found["ZamCompX2"]["params"] if p["name"] == "threshold_db")
    assert (thr["min"], thr["max"], thr["unit"]) == (-80.0, 0.0, "dB")
    assert {"Compressor", "Reverb", "Limiter"} <= {b["name"] for b in data["builtins"]}
    assert (tmp_path / "jackgen" / "plugins.json").is_file()
    r = subprocess.run([sys.executable, "-m", "jackgen.daemon.cli", "plugins", "list"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "ZamCompX2" in r.stdout and "scanning" not in r.stderr  # from the cache


def crashing_bundle(folder) -> str:
    """A VST3 bundle whose library segfaults when it is loaded, as broken plugins do."""
    so = folder / "Crash.vst3" / "Contents" / f"{os.uname().machine}-linux" / "Crash.so"
    so.parent.mkdir(parents=True)
    src = folder / "crash.c"
    src.write_text("#include <stddef.h>\nstatic void boom(void) { volatile int *p = NULL; *p = 42; }\n"
                   "int ModuleEntry(void *h) { boom(); return 1; }\nint ModuleExit(void) { return 1; }\n"
                   "void *GetPluginFactory(void) { boom(); return NULL; }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(so), str(src)], check=True)
    return str(folder / "Crash.vst3")


def test_a_plugin_that_crashes_while_loading_is_refused_not_fatal(tmp_path):
    from jackgen.plugins.isolate import instantiate_isolated, scan

    bundle = crashing_bundle(tmp_path)
    with pytest.raises(PluginError, match="crashed while loading \\(SIGSEGV\\)"):
        instantiate_isolated(bundle, extra_dirs=[str(tmp_path)])
    found = scan([str(tmp_path)], timeout_s=30)
    assert any(f["path"] == bundle and "SIGSEGV" in f["error"] for f in found["failed"])
    assert any(p["name"] == "ZamCompX2" for b in found["vst3"] for p in b["plugins"])  # the others still listed


def test_a_vst3_loads_from_any_thread_and_from_several_at_once():
    """pedalboard lets only the thread that first loaded a VST3 load it again: the feeder's second
    stream (its own thread) was refused. Every load now goes through one loader thread."""
    import threading

    errors: list[str] = []

    def load() -> None:
        try:
            p = Plugin("ZamCompX2", 48000)
            p.process(np.zeros((2, 256), dtype=np.float32))
        except Exception as e:  # noqa: BLE001
            errors.append(str(e))

    for _ in range(2):  # one after the other, each in a new thread
        t = threading.Thread(target=load)
        t.start()
        t.join()
    many = [threading.Thread(target=load) for _ in range(4)]  # and four at once
    for t in many:
        t.start()
    for t in many:
        t.join()
    assert errors == []

"""Plugin chains on live tracks: real VST3 (zam-plugins) and built-ins, through a real JACK graph."""

from __future__ import annotations

import json
import os
import time

import jack
import numpy as np
import pytest
import soundfile as sf
from scipy.signal import correlate

from jackgen.daemon.cli.recorder import record
from jackgen.dsp.mix import true_peak_dbfs
from jackgen.plugins.host import Chain
from tests.conftest import wait_for

pytestmark = pytest.mark.integration
RATE = 48000


def tone(path, seconds: float, level: float = 0.25, noise: float = 0.05):
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    rng = np.random.default_rng(1)
    x = level * np.sin(2 * np.pi * 220 * t)[:, None] + noise * rng.standard_normal((n, 2))
    sf.write(str(path), x.astype(np.float32), RATE, subtype="FLOAT")
    return x.astype(np.float32)


def matching_chunks(ref: np.ndarray, cap: np.ndarray, chunk: int = RATE // 8, reach: int = 4096,
                    rec=None) -> float:
    """Share of ``chunk``-frame pieces of ``cap`` equal (within 1e-4) to ``ref`` at some lag
    within ``reach``: a capture an xrun moved by a block or two still lines up piecewise. With
    ``rec`` (the Recording of ``cap``), a piece an xrun cuts through is not counted: it holds
    audio from both sides of the jump and matches neither."""
    cuts = [f - rec.start_frame for f in (rec.xrun_frames or [])] if rec is not None else []
    hits = total = 0
    for i in range(reach, cap.shape[0] - chunk - reach, chunk):
        piece = cap[i : i + chunk]
        if not piece.any():
            continue  # a cycle the recorder missed
        if any(i - 2 * rec.block_size <= c <= i + chunk + 2 * rec.block_size for c in cuts):
            continue
        total += 1
        window = ref[i - reach : i + chunk + reach]
        w, p = window[:, 0].astype(np.float64), piece[:, 0].astype(np.float64)
        energy = np.convolve(w * w, np.ones(chunk), mode="valid")  # sum of w^2 under each lag
        lag = int(np.argmin(energy - 2 * correlate(w, p, mode="valid")))  # least squared difference
        hits += np.abs(window[lag : lag + chunk] - piece).max() < 1e-4
    return hits / max(total, 1)


def changes_are_smooth(jg, chain: str, ports: list[str], seconds: float, slope: float, bypass_back: bool) -> None:
    """While a 0.3 sine plays through a Gain (0 dB) in ``chain``: add ZamEQ2 (mono, so dual mono),
    set the Gain to -6 dB, bypass the EQ (and back). The recording of ``ports`` may not step by
    more than ``slope`` times the dry sine's own largest step (a per-block gain jump measured
    6x), and the -6 dB must have landed by the end."""
    import threading

    def change():
        jg.api("POST", f"{chain}/add", {"plugin": "ZamEQ2"})
        jg.api("POST", f"{chain}/0/param", {"name": "gain_db", "value": -6})
        jg.api("POST", f"{chain}/1/bypass", {"on": True})
        if bypass_back:
            jg.api("POST", f"{chain}/1/bypass", {"on": False})

    timer = threading.Timer(0.3, change)
    timer.start()
    rec = record(ports, seconds)
    timer.join()
    a = rec.data[:, 0]
    if rec.xruns_during() == 0 and rec.gaps == 0:
        step = np.abs(np.diff(a)).max()
        assert step < 0.3 * 2 * np.pi * 220 / RATE * slope, step  # no click
    head, tail = np.abs(a[:4800]).max(), np.abs(a[-4800:]).max()
    assert head == pytest.approx(0.3, rel=0.05) and tail == pytest.approx(0.3 / 2, rel=0.05)  # -6 dB landed


def playing(jg, t: int) -> dict:
    return wait_for(lambda: (s := jg.status()["tracks"][t - 1])["state"] == "playing" and s, 20, 0.01,
                    f"track {t} to play")


def test_live_chain_equals_offline_processing(jackgen, tmp_path):
    x = tone(tmp_path / "in.wav", 4.0)
    jg = jackgen()
    jg.api("POST", "/api/tracks/1/chain/add", {"plugin": "ZamCompX2", "params": {"threshold_db": -30, "ratio": 8}})
    jg.api("POST", "/api/tracks/1/chain/add", {"plugin": "Gain", "params": {"gain_db": -6}})
    ch = jg.api("GET", "/api/tracks/1/chain")["chain"]
    assert [c["name"] for c in ch] == ["ZamCompX2", "Gain"] and not ch[0]["dual_mono"]
    jg.api("POST", "/api/tracks/1/play", {"file": str(tmp_path / "in.wav")})
    started = playing(jg, 1)["started_frame"]
    rec = record(["jackgen:track_01_L", "jackgen:track_01_R"], 1.0)
    # the same chain, offline, block by block from the first frame
    session = json.loads((jg.sessions / "test" / "session.json").read_text())
    offline = Chain.from_state(session["tracks"][0]["chain"], RATE)
    y = np.concatenate([offline.process(np.ascontiguousarray(x[i:i + 256].T)).T for i in range(0, len(x), 256)])
    off = rec.start_frame - started
    seg = y[off: off + rec.data.shape[0]]
    assert np.abs(rec.data).max() > 0.01
    if rec.xruns_during() == 0 and rec.gaps == 0:
        assert np.abs(rec.data - seg).max() < 1e-4
    dry_rms = np.sqrt(np.mean(x[off: off + rec.data.shape[0]] ** 2))
    assert np.sqrt(np.mean(rec.data ** 2)) < dry_rms * 0.5  # compressed and 6 dB down


def test_changes_during_playback_are_smooth_and_bad_ones_change_nothing(jackgen, tmp_path, tmp_path_factory):
    from tests.unit.plugins.test_plugins import crashing_bundle

    tone(tmp_path / "sine.wav", 8.0, level=0.3, noise=0.0)
    plugdir = tmp_path / "vst3"
    plugdir.mkdir()
    crash = crashing_bundle(plugdir)
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "Other.vst3"
    elsewhere.mkdir()
    jg = jackgen(extra_toml=f'[plugins]\nvst3_dirs = ["{plugdir}"]\n')
    jg.api("POST", "/api/tracks/2/chain/add", {"plugin": "Gain", "params": {"gain_db": 0}})
    jg.api("POST", "/api/tracks/2/play", {"file": str(tmp_path / "sine.wav")})
    playing(jg, 2)
    # a new track chain takes over ~1 s after the request (it loads while the ring holds old audio)
    changes_are_smooth(jg, "/api/tracks/2/chain", ["jackgen:track_02_L", "jackgen:track_02_R"], 3.0, 1.2,
                       bypass_back=False)
    ch = jg.api("GET", "/api/tracks/2/chain")["chain"]
    assert [c["name"] for c in ch] == ["Gain", "ZamEQ2"] and ch[1]["dual_mono"] and ch[1]["bypass"]
    for path, body, status, words in (
        ("/api/tracks/2/chain/add", {"plugin": "ZamNope"}, 400, "no plugin named"),
        ("/api/tracks/2/chain/add", {"plugin": "ZamCompX2", "params": {"ratio": 99}}, 400, "from 1 to 20"),
        ("/api/tracks/2/chain/0/param", {"name": "volume", "value": 1}, 400, "has no parameter 'volume'"),
        ("/api/tracks/2/chain/0/param", {"name": "gain_db", "value": 1000}, 400, "gain"),
        ("/api/tracks/2/chain/7/bypass", {"on": True}, 404, "no plugin 7"),
        ("/api/tracks/2/chain/add", {"plugin": "/etc/passwd"}, 400, "not a VST3 plugin"),
        ("/api/tracks/2/chain/add", {"plugin": str(elsewhere)}, 400, "outside the plugin folders"),
        ("/api/tracks/2/chain/add", {"plugin": crash}, 400, "crashed while loading (SIGSEGV)"),
    ):
        e = jg.api("POST", path, body, expect=status)
        assert words in e["error"], (path, e)
    assert [c["name"] for c in jg.api("GET", "/api/tracks/2/chain")["chain"]] == ["Gain", "ZamEQ2"]
    assert jg.status()["engine_running"]


def test_chain_over_osc_and_cli_and_it_survives_a_restart(jackgen, tmp_path):
    from tests.integration.test_generate import osc_udp, read_osc

    jg = jackgen()
    s = osc_udp(jg.osc_port, "/jackgen/track/3/chain/add", "Compressor", "threshold_db", -18.0, "ratio", 3.0)
    assert read_osc(s) == ("/jackgen/done", ["/jackgen/track/3/chain/add", 0])
    s = osc_udp(jg.osc_port, "/jackgen/track/3/chain/0/attack_ms", 7.5)
    s2 = osc_udp(jg.osc_port, "/jackgen/track/3/chain/0/nonsense", 1.0)
    assert read_osc(s2)[0] == "/jackgen/error"
    p = jg.cli("chain", "3", "add", "ZamCompX2", "--param", "threshold_db=-12")
    assert p.returncode == 0, p.stderr
    p = jg.cli("chain", "3", "bypass", "1", "on")
    assert p.returncode == 0, p.stderr
    p = jg.cli("chain", "3", "add", "NoSuchPlugin")
    assert p.returncode == 2 and "no plugin named" in p.stderr
    jg.sync()
    jg.stop()
    jg2 = jackgen()  # a new process on the same session
    ch = jg2.api("GET", "/api/tracks/3/chain")["chain"]
    assert [c["name"] for c in ch] == ["Compressor", "ZamCompX2"]
    assert ch[0]["params"]["attack_ms"] == 7.5 and ch[0]["params"]["ratio"] == 3.0
    assert ch[1]["bypass"] and ch[1]["params"]["threshold_db"] == pytest.approx(-12, abs=0.1)


def test_bounce_equals_a_real_time_recording_of_the_session(jackgen, tmp_path):
    tone(tmp_path / "a.wav", 3.0, level=0.4, noise=0.1)
    tone(tmp_path / "b.wav", 2.0, level=0.5, noise=0.0)
    jg = jackgen()
    jg.api("POST", "/api/tracks/1/chain/add", {"plugin": "ZamCompX2", "params": {"threshold_db": -20, "ratio": 4}})
    jg.api("POST", "/api/tracks/2/chain/add", {"plugin": "Gain", "params": {"gain_db": -6}})
    jg.api("POST", "/api/tracks/master/chain/add", {"plugin": "ZamCompX2", "params": {"threshold_db": -24}})
    jg.api("POST", "/api/tracks/1/gain", {"db": -3})
    jg.api("POST", "/api/tracks/2/pan", {"pan": 0.5})
    # a hot master: the EQ and makeup gain push the mix ~8 dB over the ceiling, so the limiter works
    m = jg.api("POST", "/api/master", {"gain_db": 8.0, "eq": [{"band": 1, "type": "lowshelf", "freq": 150, "gain_db": 3},
                                                                {"band": 2, "type": "peak", "freq": 2500, "gain_db": -2,
                                                                 "q": 1.2}]})
    assert m["eq"][0]["type"] == "lowshelf" and m["eq"][2]["type"] == "off" and m["gain_db"] == 8.0
    lat = m["latency_frames"]
    assert [c["name"] for c in m["chain"]] == ["ZamCompX2"]
    jg.api("POST", "/api/tracks/1/load", {"file": str(tmp_path / "a.wav")})
    jg.api("POST", "/api/tracks/2/load", {"file": str(tmp_path / "b.wav")})
    for t in (1, 2):
        wait_for(lambda t=t: jg.status()["tracks"][t - 1]["state"] == "armed", 10, 0.05, f"track {t} armed")
    at = jg.sync() + RATE // 2
    for t in (1, 2):
        jg.api("POST", f"/api/tracks/{t}/play", {"at": at})
    rec = record(["jackgen:master_L", "jackgen:master_R"], 3.2, start_at=at + lat)
    out = tmp_path / "bounce.wav"
    p = jg.cli("bounce", str(out), "--session", "test", "--format", "32f", "--tail", "0.21", "--stems")
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    assert info["tracks"] == [1, 2] and info["realtime_factor"] > 1 and not info["errors"]
    assert -40 < info["integrated_lufs"] < 0 and info["true_peak_dbtp"] >= info["peak_dbfs"]
    b, rate = sf.read(str(out), dtype="float32")
    assert rate == RATE and b.shape[0] == 3 * RATE + int(0.21 * RATE)  # not rounded up to a block
    assert sorted(x.name for x in (tmp_path / "bounce").iterdir()) == ["track_01.wav", "track_02.wav"]
    n = min(b.shape[0], rec.data.shape[0])
    assert info["master"]["gain_db"] == 8.0 and info["true_peak_dbtp"] <= -0.3
    assert true_peak_dbfs(b) <= -0.3 and true_peak_dbfs(rec.data) <= -0.3  # 4x oversampled, bounce and live
    assert np.abs(b[:n]).max() > 10 ** (-2.0 / 20)  # loud: the limiter held it, nothing pulled it down further
    if rec.xruns_during() == 0 and rec.gaps == 0:
        assert np.abs(b[:n] - rec.data[:n]).max() < 1e-4
    else:  # a disturbed capture still lines up where it was not disturbed
        assert matching_chunks(b[:n], rec.data[:n], rec=rec) >= 0.75
    e = jg.cli("bounce", str(tmp_path / "x.wav"), "--session", "nope")
    assert e.returncode == 2 and "does not exist" in e.stderr


def test_a_generated_take_plays_through_its_tracks_chain(jackgen):
    jg = jackgen()
    jg.api("POST", "/api/tracks/4/chain/add", {"plugin": "Gain", "params": {"gain_db": -6}})
    r = jg.api("POST", "/api/music-generation", {"prompt": "house", "duration": 20, "track": 4, "seed": 8},
               expect=202)
    started = playing(jg, 4)["started_frame"]
    rec = record(["jackgen:track_04_L", "jackgen:track_04_R"], 1.0)
    job = wait_for(lambda: (j := jg.api("GET", f"/api/jobs/{r['job_id']}"))["status"] == "done" and j, 60, 0.1,
                   "the job to finish")
    take, _ = sf.read(job["outputs"][0]["path"], dtype="float32")  # the take is the generator's, dry
    off = rec.start_frame - started
    wet = take[off: off + rec.data.shape[0]] * np.float32(10 ** (-6 / 20))
    assert np.abs(rec.data).max() > 0.01
    if rec.xruns_during() == 0 and rec.gaps == 0:
        assert np.abs(rec.data - wet).max() < 1e-4


def test_mastering_over_osc_cli_and_http_checked_and_kept_across_a_restart(jackgen):
    from tests.integration.test_generate import osc_udp, read_osc

    jg = jackgen()
    s = osc_udp(jg.osc_port, "/jackgen/master/eq", 1, "lowshelf", 100.0, 3.0)
    bad = osc_udp(jg.osc_port, "/jackgen/master/eq", 9, "peak", 1000.0, 1.0)
    assert read_osc(bad)[0] == "/jackgen/error"
    bad = osc_udp(jg.osc_port, "/jackgen/master/gain", "loud")
    assert read_osc(bad)[0] == "/jackgen/error"
    s.close()
    p = jg.cli("master", "--gain", "2.5", "--eq", "2:peak:2500:-2:1.5")
    assert p.returncode == 0, p.stderr
    p = jg.cli("master", "--eq", "2:tilt")
    assert p.returncode == 2 and "type must be one of" in p.stderr
    for body, words in (({"gain_db": "x"}, "must be a number"), ({"eq": [{"band": 5}]}, "band must be 1-4"),
                        ({}, "nothing to set"), ({"gain_db": 99}, "between"),
                        ({"eq": [{"band": 1, "freq": 5}]}, "freq must be between")):
        r = jg.api("POST", "/api/master", body, expect=400)
        assert words in r["error"], (body, r)
    m = jg.api("GET", "/api/master")
    assert m["gain_db"] == 2.5 and m["ceiling_dbtp"] == -0.3 and m["latency_frames"] == 82
    assert [b["type"] for b in m["eq"]] == ["lowshelf", "peak", "off", "off"]
    assert m["eq"][0]["freq"] == 100.0 and m["eq"][1]["q"] == 1.5
    jg.sync()
    jg.stop()
    m2 = jackgen().api("GET", "/api/master")
    assert m2 == m


def test_master_chain_live_equals_offline_processing(jackgen, tmp_path):
    x = tone(tmp_path / "in.wav", 4.0)
    jg = jackgen()
    r = jg.api("POST", "/api/tracks/master/chain/add", {"plugin": "ZamCompX2", "params": {"threshold_db": -30, "ratio": 8}})
    assert r["track"] == "master" and r["index"] == 0  # answered once the engine plays it
    jg.api("POST", "/api/tracks/master/chain/add", {"plugin": "Gain", "params": {"gain_db": -6}})
    st = jg.status()
    period, lat = st["block_size"], st["master"]["latency_frames"]
    assert [c["name"] for c in st["master"]["chain"]] == ["ZamCompX2", "Gain"]
    jg.api("POST", "/api/tracks/1/load", {"file": str(tmp_path / "in.wav")})
    wait_for(lambda: jg.status()["tracks"][0]["state"] == "armed", 10, 0.05, "track 1 armed")
    at = -(-(jg.sync() + RATE // 2) // period) * period  # on a block boundary, as the offline run starts
    jg.api("POST", "/api/tracks/1/play", {"at": at})
    rec = record(["jackgen:master_L", "jackgen:master_R"], 2.0, start_at=at + lat)
    session = json.loads((jg.sessions / "test" / "session.json").read_text())
    offline = Chain.from_state(session["master"]["chain"], RATE)
    z = np.zeros((2, period), np.float32)
    for _ in range(4):  # the live chain has played silence before the track came in
        offline.process(z)
    y = np.concatenate([offline.process(np.ascontiguousarray(x[i:i + period].T)).T for i in range(0, len(x), period)])
    n = rec.data.shape[0]
    assert np.abs(rec.data).max() > 0.01
    if rec.xruns_during() == 0 and rec.gaps == 0:
        assert np.abs(rec.data - y[:n]).max() < 1e-4
    else:
        assert matching_chunks(y[:n], rec.data, rec=rec) >= 0.75
    assert np.sqrt(np.mean(rec.data ** 2)) < np.sqrt(np.mean(x[:n] ** 2)) * 0.5  # compressed and 6 dB down


def test_master_chain_changes_during_playback_are_smooth_and_bad_ones_change_nothing(jackgen, tmp_path):
    tone(tmp_path / "sine.wav", 8.0, level=0.3, noise=0.0)
    jg = jackgen()
    jg.api("POST", "/api/tracks/master/chain/add", {"plugin": "Gain", "params": {"gain_db": 0}})
    jg.api("POST", "/api/tracks/5/play", {"file": str(tmp_path / "sine.wav")})
    playing(jg, 5)
    # 1.5x: a crossfade between the dry and the EQ'd sine, whose phases differ a little, measured ~1.25x
    changes_are_smooth(jg, "/api/tracks/master/chain", ["jackgen:master_L", "jackgen:master_R"], 2.5, 1.5,
                       bypass_back=True)
    ch = jg.api("GET", "/api/tracks/master/chain")["chain"]
    assert [c["name"] for c in ch] == ["Gain", "ZamEQ2"] and ch[1]["dual_mono"] and not ch[1]["bypass"]
    for path, body, status, words in (
            ("add", {"plugin": "NoSuchPlugin"}, 400, "no plugin named"),
            ("add", {"plugin": "/etc/passwd.vst3"}, 400, "is not a VST3 plugin"),
            ("0/param", {"name": "gain_db", "value": 1e9}, 400, "must be from -96 to 24 dB"),
            ("7/param", {"name": "gain_db", "value": 0}, 404, "has no plugin 7"),
            ("0/param", {"name": "nope", "value": 0}, 400, "has no parameter")):
        e = jg.api("POST", f"/api/tracks/master/chain/{path}", body, expect=status)
        assert words in e["error"], (path, e)
    assert [c["name"] for c in jg.api("GET", "/api/tracks/master/chain")["chain"]] == ["Gain", "ZamEQ2"]
    p = jg.cli("chain", "master", "remove", "1")
    assert p.returncode == 0, p.stderr
    assert [c["name"] for c in jg.status()["master"]["chain"]] == ["Gain"]


def swappable_bundle(tmp_path):
    """A copy of ZamCompX2 under another name, and a function that replaces its library with a
    build that segfaults when loaded (a plugin updated to a broken version between two runs)."""
    import shutil
    import subprocess

    plugdir = tmp_path / "vst3"
    bundle = plugdir / "Swap.vst3"
    shutil.copytree("/usr/lib/vst3/ZamCompX2.vst3", bundle)
    arch = bundle / "Contents" / f"{os.uname().machine}-linux"
    (arch / "ZamCompX2.so").rename(arch / "Swap.so")

    def break_it():
        (arch / "Swap.so").unlink()
        src = tmp_path / "crash.c"
        src.write_text("#include <stddef.h>\nstatic void boom(void) { volatile int *p = NULL; *p = 42; }\n"
                       "int ModuleEntry(void *h) { boom(); return 1; }\nint ModuleExit(void) { return 1; }\n"
                       "void *GetPluginFactory(void) { boom(); return NULL; }\n")
        subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(arch / "Swap.so"), str(src)], check=True)

    return f'[plugins]\nvst3_dirs = ["{plugdir}"]\n', bundle, break_it


def test_a_master_plugin_that_crashes_the_engine_is_marked_failed_and_the_session_comes_back(jackgen, tmp_path):
    """The engine hosts the master chain, so a plugin that crashes takes the engine down: the
    supervisor restarts it, and the plugin it died in (named by the shared crumb) stays out."""
    toml, bundle, break_it = swappable_bundle(tmp_path)
    tone(tmp_path / "sine.wav", 30.0, level=0.3, noise=0.0)
    jg = jackgen(extra_toml=toml)
    jg.api("POST", "/api/tracks/master/chain/add", {"plugin": "Gain", "params": {"gain_db": -6}})
    jg.api("POST", "/api/tracks/master/chain/add", {"plugin": str(bundle), "params": {"threshold_db": 0}})
    jg.sync()
    jg.stop()
    break_it()  # the session still lists it
    jg = jackgen(extra_toml=toml)
    st = wait_for(lambda: (s := jg.status())["engine_restarts"] >= 1 and s["engine_running"]
                  and s["master"]["chain"][1].get("failed") and s, 30, 0.2, "the engine to come back")
    failed = st["master"]["chain"][1]["failed"]
    assert "crashed the engine (SIGSEGV) while loading" in failed, failed
    assert "failed" not in st["master"]["chain"][0]
    jg.api("POST", "/api/tracks/6/play", {"file": str(tmp_path / "sine.wav")})
    playing(jg, 6)
    time.sleep(0.5)
    rec = record(["jackgen:master_L"], 0.5)
    assert np.abs(rec.data).max() == pytest.approx(0.15, rel=0.05)  # the Gain (-6 dB) runs, the engine lives
    assert jg.status()["engine_restarts"] == 1, "one crash, one restart: the failed plugin is not loaded again"
    saved = json.loads((jg.sessions / "test" / "session.json").read_text())
    assert "SIGSEGV" in saved["master"]["chain"][1]["failed"]
    p = jg.cli("chain", "master", "remove", "1")
    assert p.returncode == 0, p.stderr
    assert [c["name"] for c in jg.status()["master"]["chain"]] == ["Gain"]


def test_a_track_plugin_that_crashes_the_feeder_is_marked_failed_and_the_stream_resumes_without_it(
        jackgen, tmp_path):
    toml, bundle, break_it = swappable_bundle(tmp_path)
    tone(tmp_path / "sine.wav", 30.0, level=0.3, noise=0.0)
    jg = jackgen(extra_toml=toml)
    jg.api("POST", "/api/tracks/9/chain/add", {"plugin": "Gain", "params": {"gain_db": -6}})
    jg.api("POST", "/api/tracks/9/chain/add", {"plugin": str(bundle), "params": {"threshold_db": 0}})
    jg.sync()
    jg.stop()
    break_it()
    jg = jackgen(extra_toml=toml)
    jg.api("POST", "/api/tracks/9/play", {"file": str(tmp_path / "sine.wav")})  # the feeder loads the chain: boom
    st = wait_for(lambda: (s := jg.status())["feeder_restarts"] >= 1 and s["tracks"][8]["chain"][1].get("failed")
                  and s["tracks"][8]["state"] == "playing" and s, 30, 0.2, "the stream to resume")
    assert "crashed the feeder (SIGSEGV) while loading" in st["tracks"][8]["chain"][1]["failed"]
    time.sleep(0.5)
    rec = record(["jackgen:track_09_L"], 0.5)
    assert np.abs(rec.data).max() == pytest.approx(0.15, rel=0.05)  # through the Gain alone
    assert jg.status()["feeder_restarts"] == 1 and jg.status()["engine_restarts"] == 0
    ch = jg.api("GET", "/api/tracks/9/chain")["chain"]
    assert "SIGSEGV" in ch[1]["failed"] and "failed" not in ch[0]


def test_plugin_latency_is_compensated_on_tracks_and_reported_on_the_master(jackgen, tmp_path):
    """ZaMaximX2 delays by 480 frames (it says so). On a track the chain drops them: the track
    stays aligned with its file. On the master they add to the latency JACK reports."""
    from jackgen.daemon.engine.jacktime import capture_latency

    x = tone(tmp_path / "quiet.wav", 6.0, level=0.02, noise=0.02)  # under the maximizer's threshold: a pure delay
    jg = jackgen()
    r = jg.api("POST", "/api/tracks/7/chain/add", {"plugin": "ZaMaximX2"})
    assert r["chain"][0]["latency_frames"] == 480
    jg.api("POST", "/api/tracks/7/play", {"file": str(tmp_path / "quiet.wav")})
    started = playing(jg, 7)["started_frame"]
    rec = record(["jackgen:track_07_L", "jackgen:track_07_R"], 1.0)
    off = rec.start_frame - started
    if rec.xruns_during() == 0 and rec.gaps == 0:
        assert np.abs(rec.data - x[off: off + rec.data.shape[0]]).max() < 1e-6, "the track is not aligned with its file"
    else:
        assert matching_chunks(x[off: off + rec.data.shape[0]], rec.data, rec=rec) >= 0.75
    jg.api("POST", "/api/tracks/7/stop", {})
    jg.api("POST", "/api/tracks/master/chain/add", {"plugin": "ZaMaximX2"})
    lat = jg.status()["master"]["latency_frames"]
    assert lat == 82 + 480
    client = jack.Client("latency-probe-2", no_start_server=True)
    try:
        assert capture_latency(client, "jackgen:master_L") == (lat, lat)
    finally:
        client.close()
    jg.api("POST", "/api/tracks/8/load", {"file": str(tmp_path / "quiet.wav")})
    wait_for(lambda: jg.status()["tracks"][7]["state"] == "armed", 10, 0.05, "track 8 armed")
    at = jg.sync() + RATE // 2
    jg.api("POST", "/api/tracks/8/play", {"at": at})
    rec = record(["jackgen:master_L", "jackgen:master_R"], 1.0, start_at=at + lat)  # where a recorder looks
    n = rec.data.shape[0]
    if rec.xruns_during() == 0 and rec.gaps == 0:
        assert np.abs(rec.data - x[:n]).max() < 1e-6, "the master's reported latency is not its real one"
    else:
        assert matching_chunks(x[:n], rec.data, rec=rec) >= 0.75

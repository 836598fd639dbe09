"""The engine in a real JACK graph (jackd, dummy backend), driven through control's HTTP API.

Captures go through a second JACK client (``jackgen.daemon.cli.recorder``), which
runs after the engine in each cycle: recording sample ``i`` is JACK frame
``start_frame + i``. The documented offset between a scheduled start frame and
the first sample on the ports is therefore 0.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import jack
import numpy as np
import pytest
import soundfile as sf

from jackgen.bridge import schema as S
from jackgen.bridge.instance import InstanceRings
from jackgen.bridge.ring import AudioRing, ring_name
from jackgen.daemon.engine.jacktime import capture_latency
from jackgen.daemon.cli.recorder import record
from tests.conftest import unique_instance, wait_for

pytestmark = pytest.mark.integration

PLAYBACK_OFFSET_FRAMES = 0  # scheduled frame -> first sample on the port (see module doc)


def write_wav(path, data, rate=48000):
    sf.write(str(path), data, rate, subtype="FLOAT")
    return str(path)


def noise(frames, seed=0, level=0.5):
    return np.random.default_rng(seed).uniform(-level, level, (frames, 2)).astype(np.float32)


def ports(client, *names):
    return [f"jackgen:{n}" for n in names]


def track_state(jg, track):
    return jg.status()["tracks"][track - 1]["state"]


class BackgroundRecording:
    def __init__(self, port_names, seconds):
        self.result = None
        self.error = None
        self.thread = threading.Thread(target=self._run, args=(port_names, seconds), daemon=True)
        self.thread.start()
        time.sleep(0.3)  # client up and connected

    def _run(self, port_names, seconds):
        try:
            self.result = record(port_names, seconds)
        except Exception as e:  # surfaced in .get()
            self.error = e

    def get(self):
        self.thread.join(30)
        if self.error:
            raise self.error
        return self.result


def exact_capture(jg, path, track, x, rate=48000, extra_ports=(), attempts=3):
    """Play ``path`` on ``track`` at a scheduled frame and capture it from the ports.

    A JACK xrun during the capture (a cycle skipped for every client) moves the
    rest of the stream one block later on the frame clock, which makes a
    sample-exact comparison meaningless; such an attempt is repeated (at most
    ``attempts`` times). Clean attempts must match exactly.
    Returns (recording, at_frame, lead) with the stream at ``rec.data[lead:]``.
    """
    lead = 512
    names = [f"track_{track:02d}_L", f"track_{track:02d}_R", *extra_ports]
    noisy = []
    for _ in range(attempts):
        at = jg.sync() + rate  # one second ahead
        r = jg.api("POST", f"/api/tracks/{track}/play", {"file": path, "at": at})
        assert r["at_frame"] == at
        rec = record(ports(None, *names), (len(x) + lead) / rate + 0.2, start_at=at - lead)
        assert rec.start_frame == at - lead
        xruns = rec.xruns_during()
        if xruns == 0 and rec.gaps == 0:
            y = rec.data[lead : lead + len(x), 0:2]
            bad = np.nonzero((y != x).any(axis=1))[0]
            assert len(bad) == 0, f"track {track} differs from the file at {len(bad)} frames, first {bad[:5]}"
            return rec, at, lead
        noisy.append((xruns, rec.gaps))
    pytest.fail(f"every capture attempt was disturbed by xruns/gaps {noisy}: the machine is too loaded")


def test_file_on_track_3_comes_out_of_track_and_master_exactly(jackgen, tmp_path):
    jg = jackgen()
    x = noise(2 * 48000, seed=3)
    f = write_wav(tmp_path / "noise.wav", x)
    rec, at, lead = exact_capture(jg, f, 3, x, extra_ports=("master_L", "master_R"))
    k = lead + PLAYBACK_OFFSET_FRAMES
    lat = jg.status()["master"]["latency_frames"]  # the mastering limiter's look-ahead (a pure delay below the ceiling)
    assert lat == int(round(0.0015 * 48000)) + 10
    client = jack.Client("latency-probe", no_start_server=True)
    try:  # what Ardour reads to align its recordings of our ports
        assert capture_latency(client, "jackgen:master_L") == (lat, lat)
        assert capture_latency(client, "jackgen:track_03_R") == (0, 0)
    finally:
        client.close()
    y = rec.data
    assert np.array_equal(y[k + lat : k + lat + len(x), 2:4], x), "master differs from the file (unity gain, centre pan)"
    assert not y[:k].any() and not y[: k + lat, 2:4].any(), "nothing before the scheduled frame"
    st = wait_for(lambda: (s := jg.status())["tracks"][2]["state"] == "ended" and s, 5, what="track 3 to end")
    assert st["tracks"][2]["started_frame"] == at
    assert st["tracks"][2]["ended_frame"] == at + len(x)
    assert st["underruns"] == 0 and st["callback_errors"] == 0
    assert isinstance(st["xruns"], int)


def test_gain_mute_and_solo_land_at_the_next_block(jackgen, tmp_path):
    jg = jackgen()
    a = write_wav(tmp_path / "a.wav", np.full((20 * 48000, 2), 0.25, np.float32))
    b = write_wav(tmp_path / "b.wav", np.full((20 * 48000, 2), 0.125, np.float32))
    jg.api("POST", "/api/tracks/1/play", {"file": a})
    jg.api("POST", "/api/tracks/2/play", {"file": b})
    wait_for(lambda: track_state(jg, 2) == "playing", 5, what="tracks to play")
    bg = BackgroundRecording(ports(None, "track_01_L", "master_L"), 3.0)
    time.sleep(0.4)
    p0 = jg.sync()
    jg.api("POST", "/api/tracks/1/gain", {"db": -6.0})
    p1 = jg.sync()
    time.sleep(0.4)
    q0 = jg.sync()
    jg.api("POST", "/api/tracks/2/mute", {"on": True})
    q1 = jg.sync()
    time.sleep(0.4)
    s0 = jg.sync()
    jg.api("POST", "/api/tracks/2/solo", {"on": "on"})
    s1 = jg.sync()
    rec = bg.get()
    t1, m = rec.data[:, 0], rec.data[:, 1]
    frame = rec.start_frame + np.arange(len(t1))
    mframe = frame - jg.status()["master"]["latency_frames"]  # the master leaves this much later
    target = 0.25 * 10 ** (-6 / 20)

    ok = rec.valid  # frames the recorder actually captured (a missed cycle stays zero, which is no change)
    changed = frame[ok & (np.abs(t1 - 0.25) > 1e-6)][0]
    assert p0 < changed <= p1, f"gain change at {changed}, expected in the block after it was sent ({p0}..{p1}]"
    settle = changed + int(0.010 * 48000) + 512
    window = t1[(frame >= settle) & (frame < q0) & ok]
    assert np.allclose(window, target, atol=1e-6), (
        f"level after the ramp: {np.unique(np.round(window, 5))[:8]}, gaps {rec.gaps}, xruns {rec.xruns}")
    ramp = (frame >= changed - 10) & (frame < settle)
    both = ramp[:-1] & ramp[1:] & ok[:-1] & ok[1:]  # neighbours that were both captured
    assert np.abs(np.diff(t1))[both].max() < 0.002, "zipper noise"

    # mute track 2: master drops from target + 0.125 to target
    muted = mframe[ok & (mframe > q0) & (np.abs(m - (target + 0.125)) > 1e-6)][0]
    assert q0 < muted <= q1
    assert np.allclose(m[(mframe > q1 + 1024) & (mframe < s0) & ok], target, atol=1e-6)
    # solo track 2 (muted): every other track is silenced, master goes quiet
    soloed = mframe[ok & (mframe > s0) & (np.abs(m - target) > 1e-6)][0]
    assert s0 < soloed <= s1
    assert np.allclose(m[(mframe > s1 + 1024) & ok], 0.0, atol=1e-6)


def test_underrun_gives_silence_and_is_counted_and_the_track_recovers(jackgen, tmp_path):
    jg = jackgen("[engine]\nring_seconds = 0.25\n[feeder]\nprefill_ms = 100\n")
    f = write_wav(tmp_path / "long.wav", noise(10 * 48000, seed=4, level=0.3))
    jg.api("POST", "/api/tracks/4/play", {"file": f})
    wait_for(lambda: track_state(jg, 4) == "playing", 5, what="track 4 to play")
    feeder = jg.status()["processes"]["feeder"]
    os.kill(feeder, signal.SIGSTOP)
    try:
        st = wait_for(lambda: (s := jg.status())["underruns"] >= 1 and s, 5, what="an underrun")
        assert st["tracks"][3]["state"] == "underrun"
        rec = record(ports(None, "track_04_L", "track_04_R"), 0.5)
        assert not rec.data.any(), "a dry ring plays silence"
        assert jg.status()["underruns"] == 1, "one dry spell counts once"
    finally:
        os.kill(feeder, signal.SIGCONT)
    wait_for(lambda: track_state(jg, 4) == "playing", 5, what="track 4 to recover")
    rec = record(ports(None, "track_04_L"), 0.3)
    assert np.abs(rec.data).max() > 0.1
    assert jg.status()["processes"]["engine"] is not None


def test_killing_the_feeder_mid_stream_leaves_the_engine_running_and_the_stream_resumes(jackgen, tmp_path):
    jg = jackgen("[engine]\nring_seconds = 0.25\n")
    n = 4 * 48000
    f = write_wav(tmp_path / "four.wav", noise(n, seed=5, level=0.3))
    jg.api("POST", "/api/tracks/5/play", {"file": f})
    wait_for(lambda: track_state(jg, 5) == "playing", 5, what="track 5 to play")
    before = jg.status()["processes"]
    time.sleep(0.5)
    os.kill(before["feeder"], signal.SIGKILL)
    after = wait_for(lambda: (p := jg.status()["processes"])["feeder"] not in (None, before["feeder"]) and p, 10,
                     what="the feeder to be restarted")
    assert after["engine"] == before["engine"], "the engine must not be touched"
    st = wait_for(lambda: (s := jg.status())["tracks"][4]["state"] == "ended" and s, 15, what="the stream to end")
    assert st["feeder_restarts"] == 1 and st["engine_running"]
    ring = AudioRing.attach(ring_name(jg.instance, "track05"))
    try:
        assert ring.write_count - ring.stream_start() == n, "the restarted feeder delivered the rest of the file"
    finally:
        ring.close()


def test_killing_the_engine_brings_it_back_with_the_same_mix(jackgen, tmp_path):
    jg = jackgen()
    f = write_wav(tmp_path / "dc.wav", np.full((30 * 48000, 2), 0.5, np.float32))
    jg.api("POST", "/api/tracks/1/gain", {"db": -6.0})
    jg.api("POST", "/api/tracks/1/pan", {"pan": 0.5})
    jg.api("POST", "/api/tracks/3/mute", {"on": True})
    jg.api("POST", "/api/tracks/1/play", {"file": f})
    wait_for(lambda: track_state(jg, 1) == "playing", 5, what="track 1 to play")
    old = jg.status()["processes"]["engine"]
    os.kill(old, signal.SIGKILL)
    st = wait_for(lambda: (s := jg.status())["processes"]["engine"] not in (None, old) and s["engine_running"] and s,
                  20, what="a new engine")
    assert st["engine_restarts"] == 1
    t1 = st["tracks"][0]
    assert (t1["gain_db"], t1["pan"], st["tracks"][2]["mute"]) == (-6.0, 0.5, True)
    wait_for(lambda: track_state(jg, 1) == "playing", 5, what="the stream to resume")
    time.sleep(0.2)
    rec = record(ports(None, "track_01_L", "track_01_R"), 0.5)
    g = 0.5 * 10 ** (-6 / 20)
    assert np.allclose(rec.data[:, 0], g * np.cos(0.5 * np.pi / 2), atol=1e-5), "gain and pan restored (left)"
    assert np.allclose(rec.data[:, 1], g, atol=1e-5), "gain restored (right)"


@pytest.mark.parametrize("rate", [44100, 96000])
def test_other_sample_rates_and_a_runtime_buffer_size_change(own_jack, tmp_path, rate):
    from tests.conftest import Jackgen

    server = own_jack(rate=rate, period=1024)
    jg = Jackgen(tmp_path).start()
    try:
        assert jg.status()["sample_rate"] == rate
        native = noise(rate, seed=rate)
        f = write_wav(tmp_path / "native.wav", native, rate)
        exact_capture(jg, f, 2, native, rate)  # a file at the engine rate plays bit-exact

        # a 48 kHz file is resampled to the engine rate: same duration
        f48 = write_wav(tmp_path / "f48.wav", noise(48000, seed=1, level=0.2), 48000)
        jg.api("POST", "/api/tracks/6/play", {"file": f48})
        wait_for(lambda: jg.status()["tracks"][5]["state"] == "ended", 10, what="resampled clip")
        # frames delivered into the ring (what the resampler made); an xrun during
        # playback would shift the end frame by a block, this count not at all
        ring = AudioRing.attach(ring_name(jg.instance, "track06"))
        try:
            delivered = ring.write_count - ring.stream_start()
        finally:
            ring.close()
        assert abs(delivered - rate) <= 2, f"1 s at 48 kHz became {delivered} frames at {rate} Hz"

        subprocess.run(["jack_bufsize", "512"], check=True, capture_output=True, env=dict(os.environ))
        wait_for(lambda: jg.status()["block_size"] == 512, 10, what="engine to follow the new buffer size")
        exact_capture(jg, f, 2, native, rate)  # still exact at the new buffer size
        assert jg.status()["callback_errors"] == 0
    finally:
        jg.stop()
        server.stop()


def test_engine_exits_nonzero_when_the_jack_server_goes_away(own_jack):
    server = own_jack()
    inst = unique_instance()
    rings = InstanceRings.create(inst, 1 << 14)
    proc = subprocess.Popen([sys.executable, "-m", "jackgen.daemon.cli", "engine", "--instance", inst],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def hello():
            while (raw := rings.events.get()) is not None:
                if S.unpack(raw)[0] == S.EVT_HELLO:
                    return True
            return False

        wait_for(hello, 15, what="engine hello")
        server.proc.kill()  # the server dies under the engine
        code = proc.wait(15)
        out = proc.stdout.read()
        assert code == 3, out
        assert "JACK server went away" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        rings.close(unlink=True)


def test_engine_without_a_jack_server_says_so(tmp_path):
    inst = unique_instance()
    rings = InstanceRings.create(inst, 1 << 14)
    try:
        env = dict(os.environ, JACK_DEFAULT_SERVER=f"no-such-server-{inst}")
        r = subprocess.run([sys.executable, "-m", "jackgen.daemon.cli", "engine", "--instance", inst],
                           capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 2
        assert "cannot connect to the JACK server" in r.stderr and "start jackd" in r.stderr
    finally:
        rings.close(unlink=True)


def test_cli_commands_status_errors_and_record(jackgen, tmp_path):
    jg = jackgen()
    f = write_wav(tmp_path / "clip.wav", noise(48000, seed=9, level=0.2))
    st = jg.cli("status", "--json", check=True)
    import json

    data = json.loads(st.stdout)
    assert isinstance(data["xruns"], int) and data["sample_rate"] == 48000
    assert set(data["processes"]) >= {"control", "engine", "feeder"} and all(data["processes"].values())
    assert len(data["tracks"]) == 16 and "dsp_load" in data and "underruns" in data

    r = jg.cli("play", "17", f)
    assert r.returncode == 2 and "track 17 does not exist: tracks are 1-16" in r.stderr
    r = jg.cli("play", "1", str(tmp_path / "missing.wav"))
    assert r.returncode == 2 and "does not exist" in r.stderr
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    r = jg.cli("play", "1", str(tmp_path / "junk.wav"))
    assert r.returncode == 2 and "not an audio file" in r.stderr
    r = jg.cli("gain", "1", "loud")
    assert r.returncode == 2
    r = jg.cli("mute", "1", "maybe")
    assert r.returncode == 2 and "on or off" in r.stderr
    r = jg.cli("play", "2")
    assert r.returncode == 2 and "no clip armed" in r.stderr

    assert jg.cli("load", "2", f).returncode == 0
    assert jg.cli("gain", "2", "-3").returncode == 0
    assert jg.cli("play", "2", "--at", "bar").returncode == 0
    wait_for(lambda: track_state(jg, 2) == "playing", 5, what="armed clip to play on the bar")
    started = jg.status()["tracks"][1]["started_frame"]
    bar = 4 * 60 / 120 * 48000
    assert started % bar == 0, f"started at {started}, not on a bar line"
    out = tmp_path / "cap.wav"
    r = jg.cli("record", "0.5", str(out), "--port", "track_02")
    assert r.returncode == 0, r.stderr
    data, rate = sf.read(str(out), dtype="float32")
    assert rate == 48000 and data.shape == (24000, 2) and np.abs(data).max() > 0.01
    assert jg.cli("stop", "2").returncode == 0
    # stopped, then the loaded clip is armed again for the next trigger
    wait_for(lambda: track_state(jg, 2) in ("idle", "ended", "armed"), 5, what="track 2 to stop")


def test_bad_http_input_gets_clear_errors_and_the_daemon_keeps_running(jackgen):
    jg = jackgen()
    cases = [
        ("/api/tracks/1/gain", b"{not json", "not valid JSON"),
        ("/api/tracks/1/gain", b"[1, 2]", "JSON object"),
        ("/api/tracks/1/gain", b"{}", "missing field 'db'"),
        ("/api/tracks/1/gain", b'{"db": "loud"}', "must be a number"),
        ("/api/tracks/1/gain", b'{"db": 1e309}', "finite"),
        ("/api/tracks/0/pan", b'{"pan": 0}', "track 0 does not exist"),
        ("/api/tracks/1/pan", b'{"pan": 2}', "out of range"),
        ("/api/tracks/1/play", b'{"file": "/etc/passwd"}', "outside the folders"),
        ("/api/tracks/1/play", b'{"file": "../../../../etc/passwd"}', "outside the folders"),
        ("/api/tracks/1/play", b'{"file": 42}', "path to an audio file"),
        ("/api/tracks/1/play", b'{"file": "/nope.wav"}', "outside the folders"),
        ("/api/tracks/1/play", b'{"file": "nope.wav", "at": "soon"}', "does not exist"),
        ("/api/tracks/1/gain", b"x" * 100_000, "too large"),
    ]
    for path, body, msg in cases:
        r = httpx.post(jg.url + path, content=body, headers={"content-type": "application/json"}, timeout=10)
        assert 400 <= r.status_code < 500, (path, body[:40], r.status_code, r.text)
        assert msg in r.json()["error"], (path, r.json())
    log = jg.log.read_text()
    assert "not valid JSON" in log, "bad input is logged"
    assert jg.status()["engine_running"]


def test_a_second_instance_with_the_same_name_is_refused(jackgen, tmp_path):
    jg = jackgen()
    r = subprocess.run([sys.executable, "-m", "jackgen.daemon.cli", "run", "--config", str(jg.config)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "already running" in r.stderr
    assert jg.status()["engine_running"], "the first instance is unharmed"


def test_xruns_are_counted_and_the_engine_survives_a_stall(jackgen):
    """A stalled engine (SIGSTOP) makes JACK report xruns; they show in status."""
    jg = jackgen()
    before = jg.status()
    engine = before["processes"]["engine"]
    os.kill(engine, signal.SIGSTOP)
    time.sleep(0.3)
    os.kill(engine, signal.SIGCONT)
    st = wait_for(lambda: (s := jg.status())["xruns"] > before["xruns"] and s, 10, what="xruns to be counted")
    assert isinstance(st["xruns"], int)
    assert st["processes"]["engine"] == engine and st["engine_running"]


def test_jack_connections_come_back_after_an_engine_restart(jackgen):
    import jack

    jg = jackgen()
    c = jack.Client("test-peer", no_start_server=True)
    try:
        rec = c.inports.register("rec_in")
        c.activate()
        c.connect("jackgen:track_07_L", rec)
        wait_for(lambda: (jg.tmp / "sessions" / "test" / "connections.json").exists()
                 and "test-peer:rec_in" in (jg.tmp / "sessions" / "test" / "connections.json").read_text(),
                 10, what="the connection to be remembered")
        old = jg.status()["processes"]["engine"]
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: (s := jg.status())["processes"]["engine"] not in (None, old) and s["engine_running"], 20,
                 what="a new engine")
        wait_for(lambda: [p.name for p in c.get_all_connections(rec)] == ["jackgen:track_07_L"], 10,
                 what="the connection to be restored")
    finally:
        c.deactivate()
        c.close()


def test_engine_speaks_sd_notify_ready_and_watchdog(own_jack, tmp_path):
    """What systemd sees: READY=1 once running, then WATCHDOG=1 while JACK calls the engine."""
    own_jack()
    inst = unique_instance()
    rings = InstanceRings.create(inst, 1 << 14)
    sock_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(15)
    proc = subprocess.Popen([sys.executable, "-m", "jackgen.daemon.cli", "engine", "--instance", inst],
                            env=dict(os.environ, NOTIFY_SOCKET=sock_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        got = [sock.recv(256).decode() for _ in range(3)]
        assert got[0] == "READY=1" and "WATCHDOG=1" in got[1:]
    finally:
        proc.terminate()
        proc.wait(15)
        sock.close()
        rings.close(unlink=True)

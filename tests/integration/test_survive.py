"""A night's faults with real processes: each of jackgen's processes SIGKILLed while tracks play
and a job streams (captured through JACK), the JACK server killed and started again, jackd and
jackgen stopped together as a shutdown does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from jackgen.daemon.cli.recorder import record
from tests.conftest import wait_for
from tests.integration.test_generate import FAST_RECLAIM, events_of, job_done

pytestmark = pytest.mark.integration
RATE = 48000
WIN = RATE // 10  # 100 ms windows: a stop, a fade or an underrun shows; one lost cycle (10 ms) does not


def tones(folder, n_tracks: int, seconds: float) -> list[str]:
    paths = []
    t = np.arange(int(seconds * RATE)) / RATE
    for k in range(n_tracks):
        x = 0.1 * np.sin(2 * np.pi * (220 + 55 * k) * t)
        p = folder / f"tone{k + 1}.wav"
        sf.write(str(p), np.repeat(x[:, None], 2, axis=1).astype(np.float32), RATE, subtype="FLOAT")
        paths.append(str(p))
    return paths


def window_rms(x: np.ndarray) -> np.ndarray:
    n = x.shape[0] // WIN
    return np.sqrt((x[: n * WIN].reshape(n, WIN, -1) ** 2).mean(axis=1))


class Capture:
    """Records ports through JACK in the background while the test does its damage."""

    def __init__(self, ports: list[str], seconds: float) -> None:
        self.rec = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(ports, seconds), daemon=True)
        self.thread.start()

    def _run(self, ports, seconds) -> None:
        try:
            self.rec = record(ports, seconds, client_name="survive-rec")
        except BaseException as e:  # noqa: BLE001 (reported by result())
            self.error = e

    def result(self, timeout_s: float):
        self.thread.join(timeout_s)
        if self.error:
            raise self.error
        assert self.rec is not None, "the capture did not finish"
        return self.rec


def procs(jg) -> dict:
    return jg.status()["processes"]


def back(jg, role: str, old: int, timeout_s: float = 5.0) -> float:
    """Seconds until ``role`` runs again under a new pid (and jackgen answers, the engine runs)."""
    t0 = time.monotonic()

    def ok():
        try:
            st = jg.status()
        except Exception:  # noqa: BLE001 (control itself may be the one restarting)
            return False
        pid = st["processes"].get(role)
        feeder_ok = st["processes"].get("feeder") is not None
        return pid not in (None, old) and st["engine_running"] and feeder_ok and st["redis"]["ok"]

    wait_for(ok, timeout_s, 0.05, f"{role} to be back")
    return time.monotonic() - t0


def test_each_process_killed_while_8_tracks_play_and_a_job_streams(jackgen, tmp_path):
    """SIGKILL control, the feeder, redis-server and the worker in turn: each is back within 5 s,
    the 8 playing tracks never stop (100 ms windows of the JACK capture), the mix stays as it was,
    and the job streaming into track 9 is done once. Then the engine: back within 5 s, every
    track playing again at its level."""
    files = tones(tmp_path, 8, 60.0)
    jg = jackgen(extra_toml=FAST_RECLAIM + '[generators]\nmax_speed = 1.0\nworkers = ["procedural"]\n'
                 "start_on_demand = []\n")
    for k, f in enumerate(files):
        jg.api("POST", f"/api/tracks/{k + 1}/play", {"file": f})
    jg.api("POST", "/api/tracks/3/gain", {"db": -12.0})
    wait_for(lambda: all(t["state"] == "playing" for t in jg.status()["tracks"][:8]), 10, 0.05, "8 tracks to play")
    job = jg.api("POST", "/api/music-generation", {"prompt": "trap", "duration": 20, "track": 9, "seed": 4},
                 expect=202)["job_id"]
    wait_for(lambda: jg.status()["tracks"][8]["state"] == "playing", 20, 0.05, "the job to stream into track 9")
    ports = [f"jackgen:track_{k + 1:02d}_L" for k in range(8)]
    cap = Capture(ports, 16.0)
    time.sleep(1.5)
    recovered = {}
    for role in ("control", "feeder", "redis", "worker procedural"):
        old = procs(jg)[role] if role != "redis" else _redis_pid(jg)
        os.kill(old, signal.SIGKILL)
        recovered[role] = back(jg, role, old) if role != "redis" else _redis_back(jg, old)
        time.sleep(1.5)
    rec = cap.result(30)
    st = jg.status()
    assert st["tracks"][2]["gain_db"] == -12.0
    assert all(t["state"] == "playing" for t in st["tracks"][:8]), [t["state"] for t in st["tracks"][:8]]
    rms = window_rms(rec.data[WIN:])  # (windows, 8)
    valid = window_rms(rec.valid[WIN:, None].astype(np.float32))[:, 0] > 0.999  # windows the recorder saw whole
    level = np.median(rms[valid], axis=0)
    assert level[2] == pytest.approx(level[0] * 10 ** (-12 / 20), rel=0.1)  # track 3's -12 dB held throughout
    worst = (rms[valid] / level).min(axis=0)
    assert (worst > 0.5).all(), f"a track dropped out: worst 100 ms window / median per track {worst.round(2)}"
    assert valid.mean() > 0.9, "the recorder itself missed too much to judge"
    done = job_done(jg, job, 90)
    assert done["status"] == "done", done
    assert [e["event"] for e in events_of(jg, job)].count("done") == 1 and len(done["outputs"]) >= 1
    take, _ = sf.read(done["outputs"][0]["path"], dtype="float32")
    assert take.shape[0] == 20 * RATE
    assert "no stream grant" not in jg.log.read_text()  # the retried attempt streamed into track 9 again

    old = procs(jg)["engine"]
    os.kill(old, signal.SIGKILL)
    recovered["engine"] = back(jg, "engine", old)
    wait_for(lambda: all(t["state"] == "playing" for t in jg.status()["tracks"][:8]), 5, 0.05, "the tracks again")
    after = record(ports, 1.0, client_name="survive-rec2")
    lv = window_rms(after.data)
    assert np.median(lv[:, 2]) == pytest.approx(level[2], rel=0.1) and np.median(lv[:, 0]) == pytest.approx(
        level[0], rel=0.1)  # the mix came back with the engine
    assert max(recovered.values()) < 5.0, recovered
    print("recovered in", {k: round(v, 2) for k, v in recovered.items()})


def _redis_pid(jg) -> int | None:
    import json

    return json.loads((_runtime(jg) / "processes.json").read_text())["redis"]["pid"]


def _runtime(jg):
    from jackgen.daemon.config import load_config

    return load_config(str(jg.config)).runtime_path


def _redis_back(jg, old: int) -> float:
    t0 = time.monotonic()
    wait_for(lambda: _redis_pid(jg) not in (None, old) and jg.status()["redis"]["ok"], 5, 0.05, "redis to be back")
    return time.monotonic() - t0


PEER = """
import sys, jack
c = jack.Client("survive-peer", no_start_server=True)
c.inports.register("rec_in")
c.activate()
print("ready", flush=True)
sys.stdin.read()
"""


def _peer() -> subprocess.Popen:
    """A JACK client in its own process (closing a client whose server died can crash or hang libjack)."""
    p = subprocess.Popen([sys.executable, "-c", PEER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


def _peer_connections() -> list[str]:
    out = subprocess.run(["jack_lsp", "-c", "survive-peer:rec_in"], capture_output=True, text=True, timeout=10)
    return [line.strip() for line in out.stdout.splitlines()[1:] if line.startswith((" ", "\t"))]


def _end(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.kill()
    p.wait(10)


def test_a_jack_server_restart_brings_the_engine_back_with_its_ports_connections_and_tracks(own_jack, tmp_path):
    """jackd SIGKILLed and started again: the engine reconnects with its ports, the user's connection
    (jackgen:track_01_L -> a recorder) is made again once the recorder is back, and the track plays on."""
    from tests.conftest import Jackgen

    server = own_jack()
    f = tones(tmp_path, 1, 120.0)[0]
    jg = Jackgen(tmp_path).start()
    peers = []
    try:
        jg.api("POST", "/api/tracks/1/play", {"file": f})
        peers.append(_peer())
        subprocess.run(["jack_connect", "jackgen:track_01_L", "survive-peer:rec_in"], check=True, timeout=10)
        conns = jg.sessions / "test" / "connections.json"
        wait_for(lambda: conns.exists() and "survive-peer:rec_in" in conns.read_text(), 10, 0.1,
                 "the connection to be remembered")
        old = procs(jg)["engine"]
        server.proc.kill()  # the server dies (its clients with it: the recorder too)
        server.proc.wait()
        wait_for(lambda: not jg.status()["engine_running"], 10, 0.1, "the engine to be seen gone")
        st = jg.status()
        assert st["jack_server"]["ok"] is False and st["jack_server"]["state"] != "running", st["jack_server"]
        assert jg.api("GET", "/health", expect=None)["status"] == "degraded"
        _end(peers[0])
        server.stop()
        server.start()
        t0 = time.monotonic()
        wait_for(lambda: (s := jg.status())["engine_running"] and s["processes"]["engine"] != old, 30, 0.1,
                 "the engine to be back on the new server")
        back_s = time.monotonic() - t0
        peers.append(_peer())  # the recorder comes back after jackgen did
        wait_for(lambda: _peer_connections() == ["jackgen:track_01_L"], 35, 0.2, "the connection to be made again")
        wait_for(lambda: jg.status()["tracks"][0]["state"] == "playing", 5, 0.1, "track 1 to play on")
        rec = record(["jackgen:track_01_L"], 0.5, client_name="survive-rec3")
        assert np.abs(rec.data).max() > 0.05
        assert back_s < 15, back_s
        assert jg.status()["jack_server"] == {"ok": True, "state": "running", "message": ""}
    finally:
        for p in peers:
            _end(p)
        jg.stop()


def test_a_jack_server_that_does_not_answer_is_given_up_on_and_said(own_jack, tmp_path):
    """A frozen jackd (SIGSTOP: its socket is there, nobody answers) makes a JACK connect wait
    forever: the engine gives up after jack.connect_timeout_s, status says "not answering", and
    once the server answers again the engine is back."""
    from tests.conftest import Jackgen

    server = own_jack()
    jg = Jackgen(tmp_path, extra_toml="").start()
    cfg = jg.config.read_text().replace("[jack]\n", "[jack]\nconnect_timeout_s = 2.0\n")
    jg.config.write_text(cfg)
    try:
        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            os.kill(procs(jg)["engine"], signal.SIGKILL)  # the new engine meets the frozen server
            st = wait_for(lambda: (s := jg.status())["jack_server"]["state"] == "not answering" and s, 20, 0.1,
                          "status to say the server does not answer")
            assert "not answering" in st["jack_server"]["message"]
            assert "jack" in jg.api("GET", "/health", expect=None)["failing"]
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        wait_for(lambda: jg.status()["engine_running"], 40, 0.2, "the engine to be back")
    finally:
        jg.stop()


def test_jackd_and_jackgen_stopped_together_leave_no_crash(own_jack, tmp_path):
    """As a system shutdown does, three times: jackd and jackgen get SIGTERM at the same moment.
    jackgen exits 0, and the kernel log shows no jackgen process crashing."""
    from tests.conftest import Jackgen

    before = _segfaults()
    for k in range(3):
        server = own_jack()
        jg = Jackgen(tmp_path / f"r{k}").start() if (tmp_path / f"r{k}").mkdir() is None else None
        server.proc.terminate()
        jg.proc.terminate()
        assert jg.proc.wait(30) == 0, jg.log.read_text()[-3000:]
        server.stop()
    assert _segfaults() == before, _segfaults()[len(before):]


def _segfaults() -> list[str]:
    out = subprocess.run(["dmesg"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "segfault" in line and "jackgen" in line and "Crash" not in line]


@pytest.mark.parametrize("role", ["engine", "feeder", "worker"])
def test_a_stopped_process_stops_feeding_systemds_watchdog(role, jack_server, redis_server, tmp_path):
    """What systemd's WatchdogSec= hears: READY=1 once the part works (ports exist, the socket
    listens, the model is loaded), then WATCHDOG=1 regularly; a SIGSTOPped (hung) process goes
    silent, so systemd kills and restarts it; after SIGCONT it speaks again."""
    import socket as so

    from jackgen.bridge.instance import InstanceRings
    from tests.conftest import unique_instance

    inst = unique_instance()
    rings = InstanceRings.create(inst, 1 << 14)
    cfg = tmp_path / "j.toml"
    cfg.write_text(f'instance = "{inst}"\ndata_dir = "{tmp_path / "data"}"\n[jack]\nautoconnect_master = false\n'
                   f'[redis]\nurl = "{redis_server.url}"\n[control]\nsessions_dir = "{tmp_path / "s"}"\n'
                   f'[jobs]\nheartbeat_s = 0.5\n')
    args = {"engine": ["engine"], "feeder": ["feeder"], "worker": ["worker", "procedural"]}[role]
    path = str(tmp_path / "notify.sock")
    sock = so.socket(so.AF_UNIX, so.SOCK_DGRAM)
    sock.bind(path)
    proc = subprocess.Popen([sys.executable, "-m", "jackgen.daemon.cli", *args, "--config", str(cfg)],
                            env=dict(os.environ, NOTIFY_SOCKET=path, JACKGEN_RUNTIME_DIR=str(tmp_path / "run")),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sock.settimeout(30)
        assert sock.recv(256) == b"READY=1"
        sock.settimeout(5)
        assert sock.recv(256) == b"WATCHDOG=1"
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(0.1)
        sock.settimeout(0.05)
        with __import__("contextlib").suppress(TimeoutError):
            while True:
                sock.recv(256)  # what was sent just before the stop
        sock.settimeout(3.5)
        with pytest.raises(TimeoutError):
            sock.recv(256)  # silence: systemd's watchdog would fire
        os.kill(proc.pid, signal.SIGCONT)
        if role != "engine":  # (JACK may have thrown out an engine that stopped answering: it exits 3)
            sock.settimeout(5)
            assert sock.recv(256) == b"WATCHDOG=1"
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        proc.wait(20)
        sock.close()
        rings.close(unlink=True)


def _stall(jg, times: int, seconds: float = 0.04) -> None:
    """Freeze the engine for a few periods, a few times: JACK runs its cycles without it (xruns)."""
    for _ in range(times):
        pid = procs(jg)["engine"]
        os.kill(pid, signal.SIGSTOP)
        time.sleep(seconds)
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.3)


def test_tracks_started_before_and_after_xruns_stay_sample_aligned(jackgen, tmp_path):
    """The engine frozen for 40 ms, three times (a CPU-bound neighbour on a non-real-time server
    does the same): JACK skips its cycles. A track started on a bar before the stalls and one
    started on a later bar after them play exactly the frames the frame clock says: the distance
    between their stream positions is the distance between their start frames, on every sample."""
    n = 48000 * 20
    ramp = ((np.arange(n, dtype=np.float64) + 1) * 1e-6).astype(np.float32)
    f = tmp_path / "ramp.wav"
    sf.write(str(f), np.repeat(ramp[:, None], 2, 1), 48000, subtype="FLOAT")
    jg = jackgen()
    a = jg.api("POST", "/api/tracks/1/play", {"file": str(f), "at": "bar"})
    wait_for(lambda: jg.status()["tracks"][0]["state"] == "playing", 10, 0.05, "track 1")
    _stall(jg, 3)
    st = wait_for(lambda: (s := jg.status())["skipped_cycles"] >= 1 and s, 10, 0.1, "the skipped cycles to be seen")
    b = jg.api("POST", "/api/tracks/2/play", {"file": str(f), "at": "bar"})
    wait_for(lambda: jg.status()["tracks"][1]["state"] == "playing", 10, 0.05, "track 2")
    time.sleep(0.5)
    rec = record(["jackgen:track_01_L", "jackgen:track_02_L"], 3.0, client_name="survive-rec4")
    st = jg.status()
    assert st["engine_restarts"] == 0, "the engine was to stall, not to restart"
    idx = np.rint(rec.data.astype(np.float64) / 1e-6).astype(np.int64) - 1
    both = rec.valid & (np.abs(rec.data).min(axis=1) > 0)
    assert both.sum() > 48000, "too little captured with both tracks playing"
    want = b["at_frame"] - a["at_frame"]
    got = idx[both, 0] - idx[both, 1]
    assert (got == want).all(), (want, np.unique(got)[:10], st["skipped_frames"])
    assert st["skipped_frames"] > 0 and st["skipped_cycles"] >= 1

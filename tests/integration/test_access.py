"""The locked door, with a real daemon: the token required beyond localhost (HTTP and OSC), OSC's
source networks, symlinks out of the session refused, and fuzzing over OSC (UDP and TCP) and HTTP
while tracks play."""

from __future__ import annotations

import os
import random
import socket
import struct
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
import soundfile as sf

from jackgen.daemon.frontends.osc import build_message
from tests.conftest import Jackgen, wait_for
from tests.integration.test_osc_midi import Udp, _tcp_roundtrip

pytestmark = pytest.mark.integration
TOKEN = "s3cret-" + "x" * 24


def test_binding_beyond_localhost_without_a_token_is_refused_saying_why(jack_server, tmp_path):
    jg = Jackgen(tmp_path, control_extra='http_host = "0.0.0.0"')
    p = subprocess.run([sys.executable, "-m", "jackgen.daemon.cli", "run", "--config", str(jg.config)],
                       capture_output=True, text=True, timeout=60, env={**os.environ, "JACKGEN_TOKEN": ""})
    assert p.returncode == 2, p.stderr[-2000:]
    assert "refusing to start" in p.stderr and "control.token" in p.stderr and "0.0.0.0" in p.stderr
    w = subprocess.run([sys.executable, "-m", "jackgen.daemon.cli", "worker", "procedural", "--redis",
                        "redis://studio.example:6379/0"], capture_output=True, text=True, timeout=60)
    assert w.returncode == 2 and "without a password" in w.stderr, w.stderr[-2000:]


@pytest.fixture
def locked(jackgen):
    jg = jackgen(control_extra=f'http_host = "0.0.0.0"\nosc_host = "0.0.0.0"\ntoken = "{TOKEN}"')
    return jg


def test_http_needs_the_bearer_token_and_the_cli_sends_it(locked):
    jg = locked
    r = httpx.get(jg.url + "/api/status", timeout=5)
    assert r.status_code == 401 and "API token" in r.json()["error"]
    assert httpx.get(jg.url + "/api/status", headers={"Authorization": "Bearer wrong"}, timeout=5).status_code == 401
    assert httpx.get(jg.url + "/health", timeout=5).status_code == 401  # every request
    ok = httpx.get(jg.url + "/api/status", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert ok.status_code == 200 and ok.json()["access"]["http_token"] == 3
    p = jg.cli("status", "--json")  # the CLI reads the token from the config it is given
    assert p.returncode == 0, p.stderr


def test_osc_needs_auth_first_and_other_networks_are_dropped(locked, jackgen):
    jg = locked
    u = Udp(jg.osc_port)
    try:
        u.send("/jackgen/status")
        err = u.recv_until("/jackgen/error")
        assert err[0] == "/jackgen/status" and "/jackgen/auth" in err[1]
        u.send("/jackgen/auth", "nope")
        assert "wrong token" in u.recv_until("/jackgen/error")[1]
        u.send("/jackgen/auth", TOKEN)
        assert u.recv_until("/jackgen/auth") == ["ok"]
        u.send("/jackgen/track/2/gain", -6.0)
        u.send("/jackgen/status")
        assert u.recv_until("/jackgen/status.reply")
    finally:
        u.close()
    # TCP from the same address is admitted too; a new address would need its own /jackgen/auth
    assert _tcp_roundtrip(jg.osc_port, False, [build_message("/jackgen/sync", 7)], "/jackgen/synced") == [7]
    st = jg.status()
    assert st["tracks"][1]["gain_db"] == -6.0 and st["access"]["osc_token"] == 2

    jg.stop()  # (one engine per JACK server under the same client name)
    other = jackgen(control_extra='osc_allow = ["10.0.0.0/8"]')
    u = Udp(other.osc_port)
    try:
        u.send("/jackgen/status")
        with pytest.raises(socket.timeout):
            u.recv(1.0)  # dropped unread: 127.0.0.1 is not an allowed network here
    finally:
        u.close()
    assert other.status()["access"]["osc_network"] == 1


def test_a_symlink_out_of_the_session_is_refused_over_http_and_osc(jackgen, tmp_path):
    jg = jackgen()
    outside = tmp_path.parent / f"outside-{os.getpid()}"
    outside.mkdir(exist_ok=True)
    sf.write(str(outside / "secret.wav"), np.zeros((4800, 2), np.float32), 48000)
    session = jg.sessions / "test"
    os.symlink(outside / "secret.wav", session / "link.wav")
    os.symlink(outside, session / "linkdir")
    for name in ("link.wav", "linkdir/secret.wav", str(session / "link.wav"), "../../../" + str(outside / "secret.wav")):
        r = httpx.post(jg.url + "/api/tracks/1/play", json={"file": name}, timeout=10)
        assert r.status_code == 403 and "outside the folders" in r.json()["error"], (name, r.text)
    u = Udp(jg.osc_port)
    try:
        u.send("/jackgen/track/1/load", "linkdir/secret.wav")
        assert "outside the folders" in u.recv_until("/jackgen/error")[1]
    finally:
        u.close()
    r = httpx.post(jg.url + "/api/music-generation", json={"backend": "fluidsynth", "midi": "link.mid"}, timeout=10)
    assert r.status_code in (400, 403, 404), r.text


def _osc_garbage(rng: random.Random) -> bytes:
    good = [build_message("/jackgen/track/1/gain", -1.0), build_message("/jackgen/track/2/play", "x.wav", "bar"),
            build_message("/jackgen/status"), build_message("/jackgen/track/3/pan", 0.5),
            build_message("/jackgen/generate", "trap", 1e9), build_message("/jackgen/track/99/mute", 1),
            build_message("/jackgen/track/1/load", "../../../etc/passwd"), build_message("/jackgen/tempo", float("nan"))]
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 400))
    b = rng.choice(good)
    if kind == 1:
        return b[: rng.randrange(0, len(b))]
    if kind == 2:
        i = rng.randrange(len(b))
        return b[:i] + bytes([rng.randrange(256)]) + b[i + 1:]
    if kind == 3:  # a bundle with a lying size
        inner = rng.choice(good)
        return b"#bundle\0" + struct.pack(">Q", rng.getrandbits(64)) + struct.pack(">i", rng.randrange(-5, 5000)) + inner
    return b  # valid but wrong: out-of-range values, unknown tracks, paths outside, NaN


def _http_garbage(rng: random.Random) -> tuple[str, str, dict, bytes | None]:
    paths = ["/api/tracks/1/play", "/api/tracks/x/gain", "/api/tracks/99/pan", "/api/music-generation",
             "/api/jobs/../../etc", "/api/tempo", "/api/master", "/api/session/load", "/api/tracks/1/chain/add",
             "/api/" + "a" * rng.randrange(1, 3000), "/api/jobs/" + rng.randbytes(8).hex(), "/health", "/"]
    bodies = [b"", b"{", b"[]", b"null", b'{"db": "loud"}', b'{"file": "/etc/passwd"}', b'{"bpm": 1e308}',
              b'{"duration": -1}', b'{"prompt": "' + b"x" * 70000 + b'"}', b'{"plugin": "NoSuchThing"}',
              b'{"name": "../../x"}', rng.randbytes(rng.randrange(1, 200)), b'{"gain_db": NaN}',
              b'{"eq": [{"band": 9}]}']
    method = rng.choice(["GET", "POST", "PUT", "DELETE", "PATCH"])
    headers = {"Content-Type": rng.choice(["application/json", "text/plain", "application/x-www-form-urlencoded"])}
    return method, rng.choice(paths), headers, rng.choice(bodies)


def test_fuzz_3000_osc_packets_and_1000_http_requests_while_tracks_play(jackgen, tmp_path):
    """Seeded garbage over UDP, TCP (both framings) and HTTP: the daemon answers a valid status
    afterwards, both playing tracks still play, the engine never restarted."""
    jg = jackgen()
    t = np.arange(48000 * 60) / 48000
    for k in (1, 2):
        x = 0.1 * np.sin(2 * np.pi * 330 * k * t)
        sf.write(str(tmp_path / f"t{k}.wav"), np.repeat(x[:, None], 2, 1).astype(np.float32), 48000)
        jg.api("POST", f"/api/tracks/{k}/play", {"file": str(tmp_path / f"t{k}.wav")})
    wait_for(lambda: [t["state"] for t in jg.status()["tracks"][:2]] == ["playing"] * 2, 10, 0.05, "2 tracks")
    rng = random.Random(1234)
    u = Udp(jg.osc_port)
    for _ in range(2000):
        u.send(_osc_garbage(rng))
    for slip in (False, True):
        s = socket.create_connection(("127.0.0.1", jg.osc_port), timeout=5)
        s.sendall(b"\xc0" if slip else b"")
        for _ in range(500):
            p = _osc_garbage(rng)
            from jackgen.daemon.frontends.osc import slip_encode

            s.sendall(slip_encode(p) if slip else struct.pack(">I", max(1, len(p))) + p.ljust(max(1, len(p)), b"\0"))
        s.close()
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=jg.url, timeout=20) as h:
        for _ in range(1000):
            method, path, headers, body = _http_garbage(rng)
            try:
                r = h.request(method, path, headers=headers, content=body)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            except httpx.HTTPError:
                statuses[-1] = statuses.get(-1, 0) + 1
    assert not [c for c in statuses if c >= 500 and c != 503], statuses  # clear 4xx, never a crash
    u.drain(0.2)
    u.send("/jackgen/status")
    assert u.recv_until("/jackgen/status.reply", 10)
    u.close()
    st = jg.status()
    assert [t["state"] for t in st["tracks"][:2]] == ["playing"] * 2
    assert st["engine_running"] and st["engine_restarts"] == 0 and st["control_restarts"] == 0
    assert st["osc"]["errors"] > 1000, st["osc"]
    assert sum(statuses.values()) == 1000 and statuses.get(-1, 0) < 10, statuses

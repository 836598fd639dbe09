"""OSC (real UDP/TCP packets, liblo's oscsend) and JACK MIDI against a running jackgen."""

from __future__ import annotations

import socket
import struct
import subprocess
import threading
import time

import jack
import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pythonosc import osc_message
from pythonosc.osc_bundle_builder import OscBundleBuilder

from jackgen.daemon.frontends.osc import build_message, slip_decode, slip_encode
from jackgen.daemon.cli.recorder import record
from tests.conftest import wait_for

pytestmark = pytest.mark.integration


class Udp:
    def __init__(self, port: int) -> None:
        self.addr = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5)

    def send(self, address_or_packet, *args) -> None:
        pkt = address_or_packet if isinstance(address_or_packet, bytes) else build_message(address_or_packet, *args)
        self.sock.sendto(pkt, self.addr)

    def recv(self, timeout: float = 5.0) -> tuple[str, list]:
        self.sock.settimeout(timeout)
        data, _ = self.sock.recvfrom(65536)
        m = osc_message.OscMessage(data)
        return m.address, list(m.params)

    def recv_until(self, address: str, timeout: float = 5.0) -> list:
        deadline = time.monotonic() + timeout
        while True:
            a, p = self.recv(max(0.05, deadline - time.monotonic()))
            if a == address:
                return p

    def drain(self, quiet_s: float = 0.3) -> None:
        """Throw away the replies waiting (a flood's /jackgen/error answers) until none comes for quiet_s."""
        self.sock.settimeout(quiet_s)
        try:
            while True:
                self.sock.recvfrom(65536)
        except socket.timeout:
            pass

    def close(self) -> None:
        self.sock.close()


def write_wav(path, data, rate=48000):
    sf.write(str(path), data, rate, subtype="FLOAT")
    return str(path)


@pytest.fixture
def jg_osc(jackgen):
    jg = jackgen()
    u = Udp(jg.osc_port)
    yield jg, u
    u.close()


def test_udp_status_gain_and_errors(jg_osc):
    jg, u = jg_osc
    u.send("/jackgen/status")
    kv = u.recv_until("/jackgen/status.reply")
    d = dict(zip(kv[::2], kv[1::2]))
    assert d["sample_rate"] == 48000 and isinstance(d["xruns"], int) and "dsp_load" in d and "tracks_playing" in d

    u.send("/jackgen/track/4/gain", -6.0)
    u.send("/jackgen/track/4/pan", -0.25)
    u.send("/jackgen/track/4/mute", 1)
    u.send("/jackgen/sync", 7)
    assert u.recv_until("/jackgen/synced") == [7]
    t4 = jg.status()["tracks"][3]
    assert (t4["gain_db"], t4["pan"], t4["mute"]) == (-6.0, -0.25, True)

    bad = [
        (("/jackgen/track/17/gain", -1.0), "track 17 does not exist"),
        (("/jackgen/track/x/gain", -1.0), "not a number"),
        (("/jackgen/track/1/gain", "loud"), "needs a number"),
        (("/jackgen/track/1/gain", float("nan")), "finite"),
        (("/jackgen/track/1/gain",), "takes 1 argument"),
        (("/jackgen/track/1/pan", 3.0), "out of range"),
        (("/jackgen/track/1/mute", 5), "0 or 1"),
        (("/jackgen/track/1/play", "/etc/passwd"), "outside the folders"),
        (("/jackgen/track/1/load", "../../../etc/passwd"), "outside the folders"),
        (("/jackgen/track/1/stop", "later"), "now, beat or bar"),
        (("/jackgen/nope",), "unknown address"),
        (("/jackgen/tempo", 1000.0), "out of range"),
        (("/jackgen/session/load", "../x"), "not allowed"),
    ]
    for (addr, *args), msg in bad:
        u.send(addr, *args)
        err = u.recv_until("/jackgen/error")
        assert err[0] == addr and msg in err[1], (addr, err)
    for raw, msg in [(b"/jackgen/track/1/gain\0\0\0,f\0\0\x00", "argument 1 (f) is incomplete"),  # truncated
                     (b"/jackgen/status\0,q\0\0", "unsupported OSC type tag"),
                     (b"garbage!", "not an OSC message"),
                     (b"#bundle\0" + b"\0" * 4, "truncated")]:
        u.send(raw)
        err = u.recv_until("/jackgen/error")
        assert msg in err[1], (raw, err)
    u.send("/jackgen/status")
    assert u.recv_until("/jackgen/status.reply")
    assert "OSC" in jg.log.read_text() and "unknown address" in jg.log.read_text(), "bad input is logged"


def _tcp_roundtrip(port: int, slip: bool, packets: list[bytes], want: str) -> list:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        for p in packets:
            s.sendall(slip_encode(p) if slip else struct.pack(">I", len(p)) + p)
        buf = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            buf += s.recv(65536)
            while True:
                if slip:
                    if buf.count(b"\xc0") < 2:
                        break
                    start = buf.index(b"\xc0")
                    end = buf.index(b"\xc0", start + 1)
                    frame, buf = buf[start + 1 : end], buf[end + 1 :]
                    if not frame:
                        buf = b"\xc0" + buf
                        continue
                    pkt = slip_decode(frame)
                else:
                    if len(buf) < 4 or len(buf) < 4 + struct.unpack(">I", buf[:4])[0]:
                        break
                    n = struct.unpack(">I", buf[:4])[0]
                    pkt, buf = buf[4 : 4 + n], buf[4 + n :]
                m = osc_message.OscMessage(pkt)
                if m.address == want:
                    return list(m.params)
        raise AssertionError(f"no {want} over TCP ({'SLIP' if slip else 'size-prefixed'})")
    finally:
        s.close()


@pytest.mark.parametrize("slip", [False, True], ids=["osc1.0-size-prefix", "osc1.1-slip"])
def test_tcp_both_framings(jg_osc, slip):
    jg, _ = jg_osc
    gain = -3.0 if slip else -9.0
    r = _tcp_roundtrip(jg.osc_port, slip, [build_message("/jackgen/track/2/gain", gain),
                                           build_message("/jackgen/sync", 3)], "/jackgen/synced")
    assert r == [3]
    assert jg.status()["tracks"][1]["gain_db"] == gain
    err = _tcp_roundtrip(jg.osc_port, slip, [build_message("/jackgen/track/99/mute", 1)], "/jackgen/error")
    assert "track 99 does not exist" in err[1]


def test_oscsend_from_liblo_over_udp_and_tcp(jg_osc):
    jg, _ = jg_osc
    subprocess.run(["oscsend", "localhost", str(jg.osc_port), "/jackgen/track/5/gain", "f", "-12"], check=True,
                   timeout=10)
    subprocess.run(["oscsend", f"osc.tcp://localhost:{jg.osc_port}", "/jackgen/track/6/pan", "f", "0.5"],
                   check=True, timeout=10)
    st = wait_for(lambda: (s := jg.status())["tracks"][4]["gain_db"] == -12.0 and s["tracks"][5]["pan"] == 0.5 and s,
                  5, what="oscsend messages applied")
    assert st["osc"]["errors"] == 0


_FUZZ = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda b, cut: b[:cut], st.sampled_from([
        build_message("/jackgen/track/1/gain", -1.0), build_message("/jackgen/track/2/play", "x.wav", "bar"),
        build_message("/jackgen/status")]), st.integers(0, 40)),
    st.builds(lambda b, i, v: b[:i] + bytes([v]) + b[i + 1 :],
              st.just(build_message("/jackgen/track/3/pan", 0.5)), st.integers(0, 31), st.integers(0, 255)),
)


def test_fuzzed_packets_never_stop_the_server(jg_osc):
    jg, u = jg_osc

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=_FUZZ)
    def fuzz(data):
        u.send(data)

    fuzz()
    u.drain()  # the replies (mostly /jackgen/error)
    u.send("/jackgen/status")
    assert u.recv_until("/jackgen/status.reply", 10), "the server answers after the fuzzing"
    st_ = jg.status()
    assert st_["engine_running"] and st_["osc"]["errors"] > 0


def _bundle(at_unix: float, *msgs: bytes) -> bytes:
    b = OscBundleBuilder(at_unix)
    for m in msgs:
        b.add_content(osc_message.OscMessage(m))
    return b.build().dgram


def test_timetagged_bundle_lands_on_its_sample(jg_osc, tmp_path):
    jg, u = jg_osc
    x = np.random.default_rng(5).uniform(-0.4, 0.4, (24000, 2)).astype(np.float32)
    f = write_wav(tmp_path / "hit.wav", x)
    u.send("/jackgen/track/3/load", f)
    assert u.recv_until("/jackgen/done")[0] == "/jackgen/track/3/load"
    probe = jack.Client("tt-probe", no_start_server=True)
    try:
        when = time.time() + 1.0
        expect = probe.frame_time + int(round(1.0 * 48000))
        u.send(_bundle(when, build_message("/jackgen/track/3/play")))
        done = u.recv_until("/jackgen/done")
        at = done[2]
        # the reference (frame_time read beside time.time()) jitters by ms on a non-RT server;
        # the precise figure is in bench/control.py. Exactness is the start-frame check below.
        # (two periods: under the suite's load control's fitted clock has been seen ~1 period off JACK's
        # own estimate; the start-frame check below is the exact one)
        assert abs(at - expect) <= 1024, f"timetag mapped to {at}, expected about {expect} (two periods)"
        rec = record(["jackgen:track_03_L", "jackgen:track_03_R"], 0.8, start_at=at - 256)
        st = wait_for(lambda: (s := jg.status())["tracks"][2]["started_frame"] and s, 5, what="start")
        assert st["tracks"][2]["started_frame"] == at, "the bundle acts on exactly the frame of its timetag"
        if rec.gaps == 0 and rec.xruns_during() == 0:
            assert np.array_equal(rec.data[256 : 256 + 12000], x[:12000])
        assert not rec.data[:256].any()
    finally:
        probe.close()
    # a bundle in the past acts at once and is counted as late
    u.send(_bundle(time.time() - 5, build_message("/jackgen/track/9/gain", -2.0)))
    u.send("/jackgen/sync", 1)
    u.recv_until("/jackgen/synced")
    st = jg.status()
    assert st["tracks"][8]["gain_db"] == -2.0 and st["osc"]["late_bundles"] == 1


@pytest.mark.parametrize("bpm", [120.0, 97.0])
def test_quantized_start_lands_on_the_bar(jg_osc, tmp_path, bpm):
    jg, u = jg_osc
    f = write_wav(tmp_path / "loop.wav", np.full((48000, 2), 0.2, np.float32))
    u.send("/jackgen/tempo", bpm)
    u.send("/jackgen/track/7/play", f, "bar")
    at = u.recv_until("/jackgen/done")[2]
    st = jg.status()
    bar = 4 * 60.0 / bpm * 48000
    k = (at - st["tempo_anchor_frame"]) / bar
    assert abs(k - round(k)) * bar <= 0.5, f"start {at} is not on a bar line ({k} bars from the anchor)"
    assert st["tempo_bpm"] == bpm
    started = wait_for(lambda: jg.status()["tracks"][6]["started_frame"], 10, what="the bar to come")
    assert started == at
    u.send("/jackgen/track/7/stop", "beat")
    wait_for(lambda: jg.status()["tracks"][6]["state"] in ("idle", "ended"), 10, what="stop on the beat")
    ended = jg.status()["tracks"][6]["ended_frame"]
    beat = 60.0 / bpm * 48000
    kb = (ended - st["tempo_anchor_frame"]) / beat
    fade = int(round(0.003 * 48000))
    assert abs((ended - fade - st["tempo_anchor_frame"]) / beat - round(kb)) * beat <= 1.0, "stop fades from a beat"


def test_notify_sends_meters_and_track_state(jg_osc, tmp_path):
    jg, u = jg_osc
    f = write_wav(tmp_path / "n.wav", np.full((48000, 2), 0.3, np.float32))
    u.send("/jackgen/notify", 1)
    u.recv_until("/jackgen/done")
    u.send("/jackgen/track/1/play", f)
    seen_state = seen_meter = False
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (seen_state and seen_meter):
        a, p = u.recv(2)
        if a == "/jackgen/track/state" and p == [1, "playing"]:
            seen_state = True
        if a == "/jackgen/meters" and len(p) == 34 and p[0] > 0.25:
            seen_meter = True
    assert seen_state and seen_meter


def test_flood_is_bounded_and_the_server_keeps_serving(jg_osc):
    jg, u = jg_osc
    control_pid = jg.status()["processes"]["control"]

    def rss_kb() -> int:
        # private memory: control's own JACK client maps jackd's shared memory (~100 MB of
        # RssShmem) when it first queries connections, which is not ours to count
        with open(f"/proc/{control_pid}/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("RssAnon"))

    pkt = build_message("/jackgen/track/1/gain", -1.0)
    before = rss_kb()
    sent = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < 3.0:  # the bench runs the full 10 s at 10k/s
        for _ in range(200):
            u.sock.sendto(pkt, u.addr)
        sent += 200
    grew = rss_kb() - before
    u.drain(0.5)
    u.send("/jackgen/status")
    assert u.recv_until("/jackgen/status.reply", 20)
    st = jg.status()
    assert st["engine_running"]
    assert grew < 16 * 1024, f"control's private memory grew by {grew} kB during a flood of {sent} messages"
    assert st["osc"]["messages"] > 1000


@pytest.mark.parametrize("slip", [False, True], ids=["osc1.0-size-prefix", "osc1.1-slip"])
def test_tcp_flood_loses_nothing_and_sync_answers(jg_osc, slip):
    """100 000 fader moves over one TCP connection, then /jackgen/sync: TCP has flow control, so
    control reads the connection only as fast as it applies what it read; every message is taken
    in order (none dropped, no error), the faders end on the last values, and sync answers."""
    jg, _ = jg_osc
    n = 100_000
    frame = (lambda p: slip_encode(p)) if slip else (lambda p: struct.pack(">I", len(p)) + p)
    gains = [-60.0 + 60.0 * k / n for k in range(n)]
    blob = b"".join(frame(build_message(f"/jackgen/track/{1 + k % 4}/gain", g)) for k, g in enumerate(gains))
    blob += frame(build_message("/jackgen/track/5/pan", -0.5)) + frame(build_message("/jackgen/sync", 42))
    before = jg.status()["osc"]
    s = socket.create_connection(("127.0.0.1", jg.osc_port), timeout=120)
    try:
        s.sendall(blob)  # blocks while control holds the connection back: that is the flow control
        buf = b""
        deadline = time.monotonic() + 120
        while b"/jackgen/synced" not in buf and b"/jackgen/error" not in buf and time.monotonic() < deadline:
            buf += s.recv(65536)
    finally:
        s.close()
    assert b"/jackgen/synced" in buf and b"/jackgen/error" not in buf, buf[-300:]
    st = jg.status()
    assert st["osc"]["dropped"] == before["dropped"] and st["osc"]["errors"] == before["errors"]
    assert st["osc"]["messages"] - before["messages"] == n + 2
    last = {1 + k % 4: g for k, g in enumerate(gains)}
    assert [round(st["tracks"][t - 1]["gain_db"], 4) for t in (1, 2, 3, 4)] == [round(last[t], 4) for t in (1, 2, 3, 4)]
    assert st["tracks"][4]["pan"] == -0.5


class MidiSender:
    """A JACK client that writes a MIDI message at a chosen offset of its next cycle."""

    def __init__(self, name: str = "test-midi", connect: str | None = "jackgen:midi_in") -> None:
        self.c = jack.Client(name, no_start_server=True)
        self.port = self.c.midi_outports.register("out")
        self.pending: tuple[bytes, int] | None = None  # (message, offset)
        self.sent_at: int | None = None
        self.c.set_process_callback(self._process)
        self.c.activate()
        if connect:
            self.c.connect(self.port, connect)

    def _process(self, frames: int) -> None:
        self.port.clear_buffer()
        p = self.pending
        if p is not None:
            msg, offset = p
            self.port.write_midi_event(offset, msg)
            self.sent_at = self.c.last_frame_time + offset
            self.pending = None

    def send(self, msg: bytes, offset: int = 0) -> int:
        self.sent_at = None
        self.pending = (bytes(msg), offset)
        return wait_for(lambda: self.sent_at, 5, what="the MIDI message to be sent")

    def send_until(self, msg: bytes, landed, what: str, tries: int = 5) -> None:
        for _ in range(tries):
            self.send(msg)
            try:
                wait_for(landed, 1.0, 0.05, what)
                return
            except AssertionError:
                continue
        raise AssertionError(f"{what}: not after {tries} sends")

    def note_on(self, note: int, offset: int) -> int:
        return self.send(bytes([0x90, note, 100]), offset)

    def close(self) -> None:
        self.c.deactivate()
        self.c.close()


def test_jack_midi_note_starts_the_armed_clip_on_its_exact_frame(jg_osc, tmp_path):
    jg, u = jg_osc
    x = np.random.default_rng(2).uniform(-0.3, 0.3, (2400, 2)).astype(np.float32)
    f = write_wav(tmp_path / "pad.wav", x)
    jg.api("POST", "/api/tracks/2/load", {"file": f})  # note 37 -> track 2 (default mapping)
    midi = MidiSender()
    try:
        for offset in (0, 1, 137, 511):
            wait_for(lambda: jg.status()["tracks"][1]["state"] == "armed", 10, what="track 2 armed")
            sent = midi.note_on(37, offset)
            st = wait_for(lambda: (s := jg.status())["tracks"][1]["started_frame"] and s, 5, what="the clip to start")
            assert st["tracks"][1]["started_frame"] == sent, (
                f"note at frame {sent} (offset {offset}) started the clip at {st['tracks'][1]['started_frame']}")
            wait_for(lambda: jg.status()["tracks"][1]["state"] == "ended" or
                     jg.status()["tracks"][1]["state"] == "armed", 5, what="the clip to end")
        # the counter travels with the periodic status (every 250 ms), the start event at once
        wait_for(lambda: jg.status()["midi_events"] >= 4, 5, what="the engine to count the notes")
    finally:
        midi.close()


def test_cc_mapping_and_midi_learn_over_jack_midi(jg_osc):
    jg, _ = jg_osc
    midi = MidiSender()
    try:
        midi.send(bytes([0xB4, 7, 50]))  # default map: CC 7 on channel 5 -> track 5 gain
        wait_for(lambda: abs(jg.status()["tracks"][4]["gain_db"] - 40 * np.log10(0.5)) < 1e-6, 5,
                 what="CC 7 to move track 5's fader")
        midi.send(bytes([0xB2, 10, 0]))  # CC 10 on channel 3 -> track 3 pan hard left
        wait_for(lambda: jg.status()["tracks"][2]["pan"] == -1.0, 5, what="CC 10 to pan track 3")

        result = {}
        learner = threading.Thread(target=lambda: result.update(
            jg.api("POST", "/api/midi/learn", {"action": "gain", "track": 9, "timeout": 10})))
        learner.start()
        time.sleep(0.5)
        midi.send(bytes([0xB0, 20, 64]))  # the control being learned
        learner.join(15)
        assert result["binding"] == {"type": "cc", "number": 20, "action": "gain", "track": 9, "channel": 1,
                                     "gate": False, "plugin": None, "param": None}
        midi.send(bytes([0xB0, 20, 100]))
        wait_for(lambda: jg.status()["tracks"][8]["gain_db"] == 0.0, 5, what="the learned CC to set track 9")
        saved = (jg.sessions / "test" / "midi_map.json").read_text()
        assert '"number": 20' in saved, "learned bindings are saved with the session"
        r = jg.cli("midi", "learn", "gain", "2", "--timeout", "1")
        assert r.returncode == 2 and "nothing arrived" in r.stderr

        # a plugin parameter, learned: CC 0…127 spans its range
        jg.api("POST", "/api/tracks/6/chain/add", {"plugin": "Gain"})
        e = jg.api("POST", "/api/midi/learn", {"action": "param", "track": 6, "plugin": 0, "param": "volume"},
                   expect=400)
        assert "has no parameter 'volume'" in e["error"]
        learner = threading.Thread(target=lambda: result.update(jg.api(
            "POST", "/api/midi/learn", {"action": "param", "track": 6, "plugin": 0, "param": "gain_db",
                                        "timeout": 10})))
        learner.start()
        time.sleep(0.5)
        midi.send(bytes([0xB0, 21, 64]))
        learner.join(15)
        assert result["binding"]["action"] == "param" and result["binding"]["param"] == "gain_db"

        def gain6():
            return jg.api("GET", "/api/tracks/6/chain")["chain"][0]["params"]["gain_db"]

        # (as a knob does, the value is sent again if it did not land: a JACK MIDI event written in a
        # cycle JACK skipped under the suite's load is gone, and that is JACK's, not the mapping's)
        midi.send_until(bytes([0xB0, 21, 0]), lambda: gain6() == -96.0, "CC 21 at 0 to set the Gain to its minimum")
        midi.send_until(bytes([0xB0, 21, 127]), lambda: gain6() == 24.0, "CC 21 at 127 to set it to its maximum")
    finally:
        midi.close()


def test_hardware_controller_through_rtmidi(jackgen):
    # rtmidi's JACK backend stands in for ALSA here (no /dev/snd in CI): control opens the
    # controller's port by name pattern; nothing is connected to the engine's midi_in.
    midi = MidiSender("test-ctl", connect=None)
    try:
        jg = jackgen(control_extra='midi_api = "jack"\nmidi_inputs = ["test-ctl*"]')
        wait_for(lambda: "test-ctl:out" in jg.api("GET", "/api/midi/map")["controllers"], 10,
                 what="control to open the controller")
        midi.send(bytes([0xB3, 10, 127]))  # CC 10, channel 4 -> track 4 pan right
        wait_for(lambda: jg.status()["tracks"][3]["pan"] == 1.0, 5, what="the controller's CC")
        midi.send(bytes([0x90, 40, 90]))  # note 40 -> trigger track 5 (nothing armed: an error, logged)
        midi.send(bytes([0xB1, 7, 0]))  # CC 7 ch 2 at 0 -> silence
        wait_for(lambda: jg.status()["tracks"][1]["gain_db"] == -120.0, 5, what="CC 7 at zero")
        assert jg.status()["engine_running"]
    finally:
        midi.close()


class TimebaseMaster:
    """A JACK timebase master at a fixed tempo, rolling from transport frame 0."""

    def __init__(self, bpm: float, beats_per_bar: int = 4, rate: int = 48000) -> None:
        self.bpm, self.bpb, self.rate = bpm, beats_per_bar, rate
        self.offset: int | None = None  # frame time - transport frame while rolling
        self.c = jack.Client("test-timebase", no_start_server=True)
        self.c.set_process_callback(self._process)
        self.c.set_timebase_callback(self._timebase, conditional=False)
        self.c.activate()
        self.c.transport_frame = 0
        self.c.transport_start()

    def _process(self, frames: int) -> None:
        state, pos = self.c.transport_query_struct()
        if state == jack.ROLLING:
            self.offset = self.c.last_frame_time - pos.frame

    def _timebase(self, state, blocksize, pos, new_pos) -> None:
        beat_frames = 60.0 / self.bpm * self.rate
        beats = pos.frame / beat_frames
        pos.valid = pos.valid | jack._lib.JackPositionBBT
        pos.bar = int(beats // self.bpb) + 1
        pos.beat = int(beats % self.bpb) + 1
        pos.tick = int((beats % 1.0) * 1920)
        pos.bar_start_tick = (pos.bar - 1) * self.bpb * 1920.0
        pos.beats_per_bar = float(self.bpb)
        pos.beat_type = 4.0
        pos.ticks_per_beat = 1920.0
        pos.beats_per_minute = self.bpm

    def close(self) -> None:
        self.c.transport_stop()
        self.c.release_timebase()
        self.c.deactivate()
        self.c.close()


def test_bar_quantize_follows_the_jack_transport_master(jg_osc, tmp_path):
    jg, u = jg_osc
    f = write_wav(tmp_path / "tb.wav", np.full((24000, 2), 0.1, np.float32))
    master = TimebaseMaster(100.0, 3)
    try:
        wait_for(lambda: master.offset is not None, 5, what="the transport to roll")
        time.sleep(0.3)
        u.send("/jackgen/track/8/play", f, "bar")
        at = u.recv_until("/jackgen/done")[2]
        st = jg.status()
        assert st["tempo_source"] == "jack transport" and st["tempo_bpm"] == 100.0 and st["beats_per_bar"] == 3
        bar = 3 * 60.0 / 100.0 * 48000
        k = (at - master.offset) / bar
        tick = 60.0 / 100.0 * 48000 / 1920
        # BBT carries whole ticks (this master truncates to one), and the engine reports the frame
        # it holds at exactly: within one tick (~15 samples here); a wrong grid is off by beats
        assert abs(k - round(k)) * bar <= tick + 1, f"start {at} is {abs(k - round(k)) * bar:.1f} samples off the master's bar"
        assert wait_for(lambda: jg.status()["tracks"][7]["started_frame"], 10, what="the bar") == at
    finally:
        master.close()

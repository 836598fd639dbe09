"""Instruments on live tracks: a real LV2 synth (synthv1) heading a track's chain plays MIDI files
through a real JACK graph; LV2 effects beside VST3 ones; bad requests refused, crashing plugins kept out."""

from __future__ import annotations

import os
from pathlib import Path
import shutil
import subprocess
import tempfile
import time

import mido
import numpy as np
import pytest

from jackgen.daemon.cli.recorder import record
from jackgen.plugins.lv2 import available
from tests.conftest import wait_for
from tests.unit.plugins.test_lv2 import MELODY, PLAIN, SYNTHV1, melody, pitch_of

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not available(), reason="jackgen.plugins._lv2 is not built (liblilv-dev missing)")]
RATE = 48000


def playing(jg, t: int) -> dict:
    return wait_for(lambda: (s := jg.status()["tracks"][t - 1])["state"] == "playing" and s, 20, 0.01,
                    f"track {t} to play")


def test_a_track_with_synthv1_plays_a_midi_stem_in_tune_and_stop_silences_it(jackgen, tmp_path):
    ons = melody(tmp_path / "mel.mid")
    jg = jackgen()
    r = jg.api("POST", "/api/tracks/3/chain/add", {"plugin": SYNTHV1, "params": PLAIN})
    assert r["chain"][0]["name"] == "synthv1" and r["chain"][0]["instrument"]
    jg.api("POST", "/api/tracks/3/chain/add", {"plugin": "Gain", "params": {"gain_db": -6}})  # effects after it
    p = jg.cli("play", "3", str(tmp_path / "mel.mid"))
    assert p.returncode == 0, p.stderr
    started = playing(jg, 3)["started_frame"]
    rec = record(["jackgen:track_03_L"], 3.0)
    x = rec.data[:, 0]
    assert np.abs(x).max() > 0.05
    got = []
    for t, note in zip(ons, MELODY):
        a = int(t * RATE) + started - rec.start_frame  # where the note is in the capture
        if a >= 0 and a + int(0.45 * RATE) <= len(x):
            got.append((note, pitch_of(x, a / RATE + 0.1, a / RATE + 0.4)))
    assert len(got) >= 4 and all(abs(est - n) < 0.3 for n, est in got), got
    # a held note, stopped: silence once the engine's fade is over (all notes off, nothing hangs)
    mid = mido.MidiFile(ticks_per_beat=480)
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    tr.append(mido.Message("note_on", note=57, velocity=110, time=0))
    tr.append(mido.Message("note_off", note=57, velocity=0, time=480 * 40))  # 20 s
    mid.save(str(tmp_path / "held.mid"))
    jg.api("POST", "/api/tracks/3/play", {"file": str(tmp_path / "held.mid")})
    playing(jg, 3)
    time.sleep(0.3)
    jg.api("POST", "/api/tracks/3/stop", {})
    wait_for(lambda: jg.status()["tracks"][2]["state"] in ("stopped", "idle", "armed", "ended"), 10, 0.05,
             "track 3 to stop")
    time.sleep(0.2)
    assert np.abs(record(["jackgen:track_03_L"], 0.5).data).max() == 0.0
    st = jg.status()["tracks"][2]
    assert not st.get("error"), st
    # and it plays again: the stopped stream's unread audio (its lead) does not count against the new
    # stream's (a chained track once never primed after a stop: "the feeder did not deliver audio")
    for _ in range(2):
        jg.api("POST", "/api/tracks/3/play", {"file": str(tmp_path / "mel.mid")})
        playing(jg, 3)
        jg.api("POST", "/api/tracks/3/stop", {})
        time.sleep(0.3)


def test_midi_needs_an_instrument_and_an_instrument_goes_first(jackgen, tmp_path):
    melody(tmp_path / "mel.mid", MELODY[:2])
    jg = jackgen()
    r = jg.api("POST", "/api/tracks/4/play", {"file": str(tmp_path / "mel.mid")}, expect=400)
    assert "is a MIDI file and track 4 has no instrument at the head of its chain" in r["error"]
    jg.api("POST", "/api/tracks/4/chain/add", {"plugin": "Gain"})
    r = jg.api("POST", "/api/tracks/4/chain/add", {"plugin": SYNTHV1}, expect=400)
    assert "synthv1 is an instrument: it must be first in the chain" in r["error"]
    r = jg.api("POST", "/api/tracks/master/chain/add", {"plugin": "synthv1"}, expect=400)
    assert "the master chain takes effects only" in r["error"]
    r = jg.api("POST", "/api/tracks/4/chain/add", {"plugin": "urn:jackgen:no-such-plugin"}, expect=400)
    assert "no LV2 plugin 'urn:jackgen:no-such-plugin'" in r["error"]
    r = jg.api("POST", "/api/tracks/4/chain/add", {"plugin": "urn:dragonfly:room", "params": {"sise": 3}},
               expect=400)
    assert "Dragonfly Room Reverb has no parameter 'sise'" in r["error"]
    r = jg.api("POST", "/api/tracks/4/chain/add", {"plugin": "urn:dragonfly:room", "params": {"size": 999}},
               expect=400)
    assert "size must be from" in r["error"]
    (tmp_path / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00")
    jg.api("POST", "/api/tracks/4/chain/add", {"plugin": SYNTHV1, "index": 0})
    r = jg.api("POST", "/api/tracks/4/play", {"file": str(tmp_path / "broken.mid")}, expect=400)
    assert "is not a MIDI file jackgen can read" in r["error"]
    assert [c["name"] for c in jg.api("GET", "/api/tracks/4/chain")["chain"]] == ["synthv1", "Gain"]
    assert [c["name"] for c in jg.api("GET", "/api/tracks/master/chain")["chain"]] == []
    assert jg.status()["tracks"][3]["state"] in ("idle", "stopped")


def test_an_lv2_effect_plays_live_and_its_state_comes_back_after_a_restart(jackgen, tmp_path):
    from tests.integration.test_chains import tone

    x = tone(tmp_path / "in.wav", 6.0)
    dry = float(np.sqrt(np.mean(x[:, 0] ** 2)))
    jg = jackgen()
    r = jg.api("POST", "/api/tracks/2/chain/add", {"plugin": "http://gareus.org/oss/lv2/fil4#stereo",
                                                   "params": {"gain": -12}})
    assert r["chain"][0]["name"].startswith("x42-eq")
    jg.api("POST", "/api/tracks/2/chain/0/param", {"name": "gain", "value": -6})
    jg.api("POST", "/api/tracks/2/play", {"file": str(tmp_path / "in.wav")})
    playing(jg, 2)
    quiet = float(np.sqrt(np.mean(record(["jackgen:track_02_L"], 0.5).data ** 2)))
    assert quiet == pytest.approx(dry / 2, rel=0.1)  # the EQ's output gain: 6 dB down
    jg.stop()
    jg = jackgen()
    ch = jg.api("GET", "/api/tracks/2/chain")["chain"]
    assert ch[0]["params"]["gain"] == -6 and ch[0]["kind"] == "lv2"
    jg.api("POST", "/api/tracks/2/play", {"file": str(tmp_path / "in.wav")})
    playing(jg, 2)
    again = float(np.sqrt(np.mean(record(["jackgen:track_02_L"], 0.5).data ** 2)))
    assert again == pytest.approx(dry / 2, rel=0.1)


def swappable_lv2_bundle(tmp_path):
    """A newer copy of ZamComp's LV2 bundle (its URI, a higher version: lilv takes it over Debian's),
    and a function that replaces its library with one that segfaults when loaded (a plugin updated
    to a broken build between two runs)."""
    lv2dir = tmp_path / "lv2"
    bundle = lv2dir / "ZamCompSwap.lv2"
    shutil.copytree("/usr/lib/lv2/ZamComp.lv2", bundle)
    dsp = bundle / "ZamComp_dsp.ttl"
    dsp.write_text(dsp.read_text().replace("lv2:microVersion 0", "lv2:microVersion 99"))
    lib = next(bundle.glob("*.so"))

    def break_it():
        src = tmp_path / "crash.c"
        src.write_text("#include <stddef.h>\nconst void *lv2_descriptor(unsigned i) {"
                       " volatile int *p = NULL; *p = 42; return NULL; }\n")
        lib.unlink()
        subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)

    return lv2dir, break_it


def test_an_lv2_plugin_that_crashes_is_refused_or_marked_failed_and_the_track_plays_on(jackgen, tmp_path,
                                                                                     monkeypatch):
    from tests.integration.test_chains import tone

    lv2dir, break_it = swappable_lv2_bundle(tmp_path)
    monkeypatch.setenv("LV2_PATH", f"{lv2dir}:/usr/lib/lv2")  # the daemon's processes inherit it
    tone(tmp_path / "sine.wav", 30.0, level=0.3, noise=0.0)
    jg = jackgen()
    jg.api("POST", "/api/tracks/9/chain/add", {"plugin": "Gain", "params": {"gain_db": -6}})
    jg.api("POST", "/api/tracks/9/chain/add", {"plugin": "urn:zamaudio:ZamComp", "params": {"thr": 0}})
    jg.sync()
    jg.stop()
    break_it()
    jg = jackgen()
    r = jg.api("POST", "/api/tracks/10/chain/add", {"plugin": "urn:zamaudio:ZamComp"}, expect=400)
    assert "crashed while loading (SIGSEGV)" in r["error"]  # a new add: refused, the chain unchanged
    assert jg.api("GET", "/api/tracks/10/chain")["chain"] == []
    jg.api("POST", "/api/tracks/9/play", {"file": str(tmp_path / "sine.wav")})  # the feeder loads it: boom
    st = wait_for(lambda: (s := jg.status())["feeder_restarts"] >= 1 and s["tracks"][8]["chain"][1].get("failed")
                  and s["tracks"][8]["state"] == "playing" and s, 30, 0.2, "the stream to resume")
    assert "crashed the feeder (SIGSEGV) while loading" in st["tracks"][8]["chain"][1]["failed"]
    time.sleep(0.5)
    assert np.abs(record(["jackgen:track_09_L"], 0.5).data).max() == pytest.approx(0.15, rel=0.05)
    assert os.environ["LV2_PATH"].startswith(str(lv2dir))


def test_live_midi_into_an_instrument_sounds_at_its_frame_plus_the_latency_every_time(jackgen):
    """A JACK MIDI note at offset k of a cycle, on channel 2, sounds on track 2 exactly
    plugins.live_latency_ms after its frame: the same latency for every note and offset."""
    import threading

    from tests.integration.test_osc_midi import MidiSender

    jg = jackgen(extra_toml="[plugins]\nlive_latency_ms = 100\n")  # room for a loaded CI box
    r = jg.api("POST", "/api/tracks/2/live", {}, expect=400)
    assert "no instrument at the head of its chain" in r["error"]
    jg.api("POST", "/api/tracks/2/chain/add", {"plugin": SYNTHV1, "params": PLAIN})
    p = jg.cli("live", "2")
    assert p.returncode == 0, p.stderr
    latency = jg.api("POST", "/api/tracks/2/live", {"on": True})["latency_frames"]
    assert latency == int(0.1 * RATE)
    playing(jg, 2)
    time.sleep(0.3)
    box: dict = {}
    rec_thread = threading.Thread(target=lambda: box.update(rec=record(["jackgen:track_02_L"], 4.5)))
    rec_thread.start()
    time.sleep(0.3)
    midi = MidiSender()
    sent = []
    try:
        for offset in (0, 1, 137, 300, 511, 64):
            sent.append(midi.send(bytes([0x91, 69, 100]), offset))  # note on, channel 2
            time.sleep(0.25)
            midi.send(bytes([0x81, 69, 0]), 0)
            time.sleep(0.3)
    finally:
        midi.close()
    rec_thread.join()
    rec = box["rec"]
    x = rec.data[:, 0]
    cuts = [f - rec.start_frame for f in (rec.xrun_frames or [])]
    onsets = []
    for f in sent:
        want = f + latency - rec.start_frame
        if any(abs(c - want) < 4 * rec.block_size for c in cuts):
            continue  # an xrun moved this one: the engine re-locked, the capture jumped
        seg = np.abs(x[want - 2400: want + 2400])
        assert seg[:2400 - 8].max() < 1e-4, "sound before the note's time"
        onsets.append(int(np.argmax(seg > 1e-4)) - 2400)
    assert len(onsets) >= 4 and all(0 <= o <= 2 for o in onsets), onsets
    st = jg.status()
    assert st["tracks"][1]["source"] == "live:instrument" and st["tracks"][1]["state"] == "playing"
    jg.api("POST", "/api/tracks/2/live", {"on": False})
    wait_for(lambda: jg.status()["tracks"][1]["state"] not in ("playing", "stopping"), 10, 0.05, "track 2 to stop")


def test_a_generated_takes_stems_played_by_instruments_from_the_cli(jackgen, tmp_path):
    """`jackgen generate … --instrument melody=synthv1 --instrument drums=DrumGizmo --instrument-param …`:
    the take is made with them (its JSON says which), streams into its track; a bad one is refused
    before anything is queued."""
    import json

    from tests.unit.plugins.test_lv2 import tiny_kit

    jg = jackgen()
    kit, midimap, _ = tiny_kit(jg.sessions / "test" / "kits" / "tiny")  # a kit in the session folder
    p = jg.cli("generate", "deep house 124 bpm", "--duration", "3", "--seed", "7", "--track", "5",
               "--instrument", "melody=synthv1", "--instrument", "drums=DrumGizmo",
               "--instrument-param", f"drums.drumkitfile={kit}", "--instrument-param", f"drums.midimapfile={midimap}",
               "--wait")
    assert p.returncode == 0, p.stderr
    job = json.loads(p.stdout)
    assert job["status"] == "done"
    meta = json.loads(Path(job["outputs"][0]["path"]).with_suffix(".json").read_text())
    assert meta["instruments"] == {"melody": "synthv1", "drums": "DrumGizmo"}
    assert meta["params"]["instruments"]["drums"]["params"]["drumkitfile"] == kit
    p = jg.cli("generate", "house", "--instrument", "melody=urn:dragonfly:room")
    assert p.returncode != 0 and "instruments.melody: Dragonfly Room Reverb is an effect, not an instrument" in p.stderr
    elsewhere = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="jackgen-test-kit-"))  # outside every allowed folder
    try:
        p = jg.cli("generate", "house", "--instrument", "drums=DrumGizmo", "--instrument-param",
                   f"drums.drumkitfile={tiny_kit(elsewhere)[0]}")
    finally:
        shutil.rmtree(elsewhere)
    assert p.returncode != 0 and "is outside the folders jackgen reads from" in p.stderr
    p = jg.cli("generate", "house", "--instrument", "melody")
    assert p.returncode == 2 and "--instrument takes STEM=PLUGIN" in p.stderr


@pytest.mark.skipif(not shutil.which("lv2apply"), reason="lilv-utils (lv2apply) is not installed")
def test_an_lv2_effect_live_on_a_track_equals_lilvs_own_offline_host(jackgen, tmp_path):
    """x42 darc on track 6, recorded through JACK, against lv2apply's processing of the same file
    with the same settings: the same samples, aligned on the track's start frame."""
    import soundfile as sf

    from tests.integration.test_chains import matching_chunks, tone

    x = tone(tmp_path / "in.wav", 5.0, level=0.3, noise=0.05)
    params = {"threshold": -40, "Ratio": 0.8, "inputgain": 6}
    cmd = ["lv2apply", "-i", str(tmp_path / "in.wav"), "-o", str(tmp_path / "ref.wav")]
    for k, v in params.items():
        cmd += ["-c", k, str(v)]
    subprocess.run([*cmd, "http://gareus.org/oss/lv2/darc#stereo"], check=True, capture_output=True, timeout=60)
    ref, _ = sf.read(tmp_path / "ref.wav", dtype="float32", always_2d=True)
    jg = jackgen()
    jg.api("POST", "/api/tracks/6/chain/add", {"plugin": "http://gareus.org/oss/lv2/darc#stereo", "params": params})
    jg.api("POST", "/api/tracks/6/play", {"file": str(tmp_path / "in.wav")})
    started = playing(jg, 6)["started_frame"]
    # captured from 0.2 s into the track: past darc's first 0.1 s, where the two hosts' gain smoothing
    # starts apart (a capture begun at once started there in one fresh-clone run)
    rec = record(["jackgen:track_06_L", "jackgen:track_06_R"], 1.5, start_at=started + RATE // 5)
    off = rec.start_frame - started
    assert off > RATE // 10  # past darc's first 0.1 s, where the two hosts' gain smoothing starts apart
    seg = ref[off: off + rec.data.shape[0]]
    assert np.abs(seg - x[off: off + len(seg)]).max() > 0.01  # darc did something
    if rec.xruns_during() == 0 and rec.gaps == 0:
        assert np.abs(rec.data - seg).max() < 1e-5
    else:
        assert matching_chunks(seg, rec.data, rec=rec) >= 0.75

"""Generation end to end: jobs over HTTP, OSC and the CLI, streamed into a real JACK graph."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from pythonosc.osc_message_builder import OscMessageBuilder

from jackgen.daemon.cli.recorder import record
from tests.conftest import wait_for

pytestmark = pytest.mark.integration


def job_done(jg, job_id: str, timeout_s: float = 60.0) -> dict:
    return wait_for(lambda: (j := jg.api("GET", f"/api/jobs/{job_id}"))["status"] in ("done", "failed", "cancelled")
                    and j, timeout_s, 0.1, f"job {job_id} to end")


def events_of(jg, jid: str) -> list[dict]:
    out = []
    with httpx.stream("GET", f"{jg.url}/api/jobs/{jid}/events", timeout=30) as resp:
        for line in resp.iter_lines():
            if line.startswith("data:"):
                out.append(json.loads(line[5:]))
                if out[-1]["event"] in ("done", "failed", "cancelled"):
                    break
    return out


def test_generated_audio_streams_into_the_track_while_the_job_runs(jackgen, jack_server):
    jg = jackgen()
    r = jg.api("POST", "/api/music-generation", {"prompt": "chill lofi beat", "duration": 40, "track": 3,
                                                 "seed": 11, "bpm": 84, "key": "A minor"}, expect=202)
    jid = r["job_id"]
    assert r["status"] == "queued" and r["seed"] == 11
    # the track plays before the job is done: 40 s of audio is far from rendered when it starts
    st = wait_for(lambda: (s := jg.status())["tracks"][2]["state"] == "playing" and s, 20, 0.02, "track 3 to play")
    job_then = jg.api("GET", f"/api/jobs/{jid}")
    started = st["tracks"][2]["started_frame"]
    assert started is not None
    # capture a second of track 3 and find it in the take, sample for sample
    rec = record(["jackgen:track_03_L", "jackgen:track_03_R"], 1.0)
    job = job_done(jg, jid)
    assert job["status"] == "done", job
    assert job_then["status"] in ("running", "done")
    t = job["timings"]
    assert 0 < t["first_audio_s"] < t["done_s"], t
    take = Path(job["outputs"][0]["path"])
    assert take.parent == jg.sessions / "test" / "audio_gen" and take.suffix == ".wav"
    audio, rate = sf.read(str(take), dtype="float32")
    assert rate == 48000 and audio.shape == (40 * 48000, 2)
    off = rec.start_frame - started
    assert 0 <= off < audio.shape[0] - rec.data.shape[0]
    seg = audio[off: off + rec.data.shape[0]]
    if rec.xruns_during() == 0 and rec.gaps == 0:
        assert np.abs(rec.data - seg).max() < 1e-4
    assert np.sqrt(np.mean(rec.data ** 2)) > 0.01
    meta = json.loads(Path(job["outputs"][0]["json"]).read_text())
    assert meta["seed"] == 11 and meta["backend"] == "procedural" and meta["prompt"] == "chill lofi beat"
    assert meta["sample_rate"] == 48000 and meta["params"]["key"] == "A minor" and meta["style"] == "lofi"
    assert set(meta["timings"]) >= {"queued_at", "first_audio_s", "done_s", "ttfa_s"}
    stems = jg.sessions / "test" / "midi_stems" / meta["take"]
    assert sorted(p.name for p in stems.glob("*.mid")) == ["bass.mid", "chords.mid", "drums.mid", "full.mid",
                                                           "melody.mid"]
    # the take id arms like a file
    assert jg.api("POST", "/api/tracks/5/load", {"file": meta["take"]})["armed"] == str(take)


def test_variations_bad_requests_and_events(jackgen):
    jg = jackgen()
    r = jg.api("POST", "/api/music-generation", {"prompt": "house", "duration": 3, "seed": 100, "variations": 3,
                                                 "style": "house"}, expect=202)
    events = events_of(jg, r["job_id"])  # server-sent events follow the job to its end
    kinds = [e["event"] for e in events]
    assert kinds[0] == "queued" and kinds[-1] == "done" and "started" in kinds, kinds
    job = jg.api("GET", f"/api/jobs/{r['job_id']}")
    seeds = [json.loads(Path(o["json"]).read_text())["seed"] for o in job["outputs"]]
    assert seeds == [100, 101, 102]
    takes = [sf.read(o["path"], dtype="float32")[0] for o in job["outputs"]]
    assert all(t.shape == (3 * 48000, 2) for t in takes)
    assert not np.array_equal(takes[0], takes[1])
    # the product's own API example: a trap take at 140 bpm in F# minor, and the reply says what it heard
    r = jg.api("POST", "/api/music-generation", {"prompt": "heavy 808 bass drop trap beat 140 BPM", "duration": 4,
                                                 "bpm": 140, "key": "F#m", "style": "trap", "output_format": "wav",
                                                 "priority": "high"}, expect=202)
    assert r["interpreted"]["chosen"] == {"genre": "trap", "bpm": 140.0, "key": "F# minor", "words": ["808"]}
    assert r["interpreted"]["summary"].startswith("trap at 140 bpm in F# minor")
    events_of(jg, r["job_id"])
    job = jg.api("GET", f"/api/jobs/{r['job_id']}")
    meta = json.loads(Path(job["outputs"][0]["json"]).read_text())
    assert (meta["style"], meta["bpm"], meta["key"]) == ("trap", 140.0, "F# minor")
    assert meta["interpreted"]["read"]["bpm"] == 140.0 and set(meta["stems"]) == {"drums", "808", "chords",
                                                                                 "melody", "full"}
    assert all(Path(p).is_file() for p in meta["stems"].values())
    e = jg.api("POST", "/api/music-generation", {"prompt": "x", "style": "polka"}, expect=400)
    assert "trap, drill, boombap" in e["error"] and "polka" in e["error"]
    for body, words in (
        ({"prompt": "x", "duration": 1e9}, "duration"),
        ({"prompt": "x", "duration": "long"}, "duration"),
        ({"prompt": "x", "backend": "wavenet"}, "backend"),
        ({"prompt": "x", "key": "H# dorian"}, "key"),
        ({"prompt": "x", "track": 17}, "track"),
        ({"prompt": "x", "variations": 0}, "variations"),
        ({"prompt": "x", "bogus": 1}, "unknown job field"),
        ({"prompt": 5}, "prompt"),
        ({"prompt": "x", "backend": "fluidsynth", "midi": "nothere.mid"}, "does not exist"),
    ):
        e = jg.api("POST", "/api/music-generation", body, expect=400)
        assert words in e["error"], (body, e)
    e = jg.api("POST", "/api/music-generation", {"prompt": "x", "backend": "fluidsynth", "midi": "/etc/passwd"},
               expect=403)
    assert "outside the folders" in e["error"]
    e = jg.api("POST", "/api/music-generation", {"prompt": "x", "midi": "../../../etc/passwd"}, expect=403)
    assert "outside the folders" in e["error"]
    r = httpx.post(f"{jg.url}/api/music-generation", content=b"{not json", timeout=5)
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    assert "no job" in jg.api("GET", "/api/jobs/nope", expect=404)["error"]
    assert jg.status()["engine_running"]


def osc_udp(port: int, address: str, *args) -> socket.socket:
    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(20)
    s.sendto(b.build().dgram, ("127.0.0.1", port))
    return s


def read_osc(s: socket.socket):
    from pythonosc.osc_message import OscMessage

    m = OscMessage(s.recv(65536))
    return m.address, list(m.params)


def test_generate_over_osc_replies_job_then_done(jackgen):
    jg = jackgen()
    s = osc_udp(jg.osc_port, "/jackgen/generate", "ambient pads", 2.0, "style", "ambient", "seed", 7, "bpm", 70.0)
    addr, args = read_osc(s)
    assert addr == "/jackgen/job" and args[1] == "queued"
    jid = args[0]
    addr2, args2 = read_osc(s)
    assert (addr2, args2) == ("/jackgen/done", ["/jackgen/generate", jid])
    assert jg.api("GET", f"/api/jobs/{jid}")["params"]["bpm"] == 70.0
    for bad, words in ((("ambient", "long"), "seconds"), (("x", 2.0, "bpm"), "twos"),
                       (("x", 2.0, "tempo", 3.0), "unknown key"), (("x", 2.0, "seed", "five"), "seed must be int"),
                       (("x", 99999.0), "duration")):
        s2 = osc_udp(jg.osc_port, "/jackgen/generate", *bad)
        addr, args = read_osc(s2)
        assert addr == "/jackgen/error" and words in args[1], (bad, args)


FAST_RECLAIM = "[jobs]\nworker_ttl_s = 1.0\nheartbeat_s = 0.2\nretry_backoff_s = 0.2\n"


def test_a_worker_killed_mid_stream_its_job_is_retried_and_done_once(jackgen, jack_server):
    jg = jackgen(extra_toml=FAST_RECLAIM + "[generators]\nmax_speed = 2.0\n")
    r = jg.api("POST", "/api/music-generation", {"prompt": "rock", "duration": 20, "track": 1, "seed": 3,
                                                 "style": "rock"}, expect=202)
    wait_for(lambda: jg.status()["tracks"][0]["state"] == "playing", 20, 0.02, "track 1 to play")
    first_epoch = jg.status()["tracks"][0]["epoch"]
    job = jg.api("GET", f"/api/jobs/{r['job_id']}")
    assert job["status"] == "running" and job["attempts"] == 1
    pid = jg.status()["processes"]["worker procedural"]
    os.kill(pid, signal.SIGKILL)
    job = job_done(jg, r["job_id"], 90)
    assert job["status"] == "done" and job["attempts"] == 2, job
    ev = events_of(jg, r["job_id"])
    kinds = [e["event"] for e in ev]
    assert kinds.count("done") == 1 and kinds.count("started") == 2, kinds
    assert ev[kinds.index("started")]["worker"] != job["worker"]  # the second attempt is another worker's
    files = sorted(p.name for p in (jg.sessions / "test" / "audio_gen").iterdir())
    assert files == [f"{r['job_id']}.json", f"{r['job_id']}.wav"], files  # one take, no part file left over
    meta = json.loads((jg.sessions / "test" / "audio_gen" / f"{r['job_id']}.json").read_text())
    assert meta["worker"] == job["worker"]
    take, _ = sf.read(job["outputs"][0]["path"], dtype="float32")
    assert take.shape[0] == 20 * 48000
    tr = jg.status()["tracks"][0]
    assert tr["epoch"] > first_epoch and tr["source"] == job["outputs"][0]["path"]  # the retried stream plays
    rec = record(["jackgen:track_01_L", "jackgen:track_01_R"], 0.5)
    assert np.abs(rec.data).max() > 0.01
    # a job whose worker keeps dying ends in the dead letters with the reason, and can be retried
    r2 = jg.api("POST", "/api/music-generation", {"prompt": "rock", "duration": 60, "seed": 4}, expect=202)
    for attempt in range(1, 4):
        wait_for(lambda: (j := jg.api("GET", f"/api/jobs/{r2['job_id']}"))["status"] == "running"
                 and j["attempts"] == attempt and j, 30, 0.05, f"attempt {attempt}")
        wpid = jg.status()["processes"]["worker procedural"]
        os.kill(wpid, signal.SIGKILL)
        wait_for(lambda: jg.status()["processes"].get("worker procedural") not in (None, wpid), 30, 0.1,
                 "the worker to come back")
    job2 = job_done(jg, r2["job_id"], 60)
    assert job2["status"] == "failed" and job2["dead"] and "gave up after 3 attempts" in job2["error"], job2
    assert "died" in job2["error"]
    dead = jg.api("GET", "/api/jobs?dead=true")
    assert [d["job_id"] for d in dead] == [r2["job_id"]] and dead[0]["attempts"] == 3
    p = jg.cli("jobs", "list", "--dead")
    assert p.returncode == 0 and r2["job_id"] in p.stdout
    p = jg.cli("jobs", "retry", r2["job_id"])
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["status"] in ("queued", "running")
    assert jg.api("GET", "/api/jobs?dead=true") == []
    jg.api("DELETE", f"/api/jobs/{r2['job_id']}")
    assert jg.status()["engine_running"]


def test_cli_generate_wait_and_jobs(jackgen):
    jg = jackgen()
    p = jg.cli("generate", "drill beat dark strings 150 BPM hard kick", "--duration", "2", "--seed", "4", "--wait")
    assert p.returncode == 0, p.stderr
    assert "heard: drill at 150 bpm in C# minor, dark hard kick strings" in p.stderr
    job = json.loads(p.stdout)
    assert job["status"] == "done" and Path(job["outputs"][0]["path"]).is_file()
    p = jg.cli("generate", "x", "--duration", "-3")
    assert p.returncode == 2 and "duration" in p.stderr
    p = jg.cli("jobs", "cancel", job["job_id"])
    assert p.returncode == 0 and json.loads(p.stdout)["status"] == "done"


def test_musicgen_job_streams_into_a_track(jackgen, tmp_path):
    from jackgen.generators.musicgen import random_checkpoint

    ckpt = random_checkpoint(tmp_path / "tiny-musicgen", "tiny", seed=2)
    jg = jackgen(extra_toml=f'[generators]\nmusicgen_model = "{ckpt}"\nmusicgen_device = "cpu"\n')
    r = jg.api("POST", "/api/music-generation", {"prompt": "dreamy synth", "duration": 2.0, "backend": "musicgen",
                                                 "track": 2, "seed": 9, "bpm": 90}, expect=202)
    job = job_done(jg, r["job_id"], timeout_s=120)
    assert job["status"] == "done", job
    assert job["metadata"]["model"] == str(ckpt) and job["metadata"]["device"] == "cpu"
    assert job["metadata"]["prompt_text"] == "dreamy synth, 90 bpm"
    audio, rate = sf.read(job["outputs"][0]["path"], dtype="float32")
    assert rate == 48000 and abs(audio.shape[0] - 2 * 48000) <= 2
    st = jg.status()
    assert st["tracks"][1]["started_frame"] is not None  # the engine played it
    # status lists the live workers as of its last look (every second)
    wait_for(lambda: jg.status()["processes"].get("worker musicgen"), 5, 0.1, "the musicgen worker in status")


def test_notify_subscribers_hear_job_progress(jackgen):
    from pythonosc.osc_message import OscMessage

    jg = jackgen()
    s = osc_udp(jg.osc_port, "/jackgen/notify", 1)
    assert read_osc(s) == ("/jackgen/done", ["/jackgen/notify"])
    b = OscMessageBuilder("/jackgen/generate")
    for a in ("rock", 3.0, "seed", 1):
        b.add_arg(a)
    s.sendto(b.build().dgram, ("127.0.0.1", jg.osc_port))
    states = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = OscMessage(s.recv(65536))
        if m.address == "/jackgen/job" and len(m.params) == 3:
            states.append((m.params[1], m.params[2]))
        if m.address == "/jackgen/done" and m.params[0] == "/jackgen/generate":
            break
    kinds = [st for st, _ in states]
    assert kinds[0] == "queued" and kinds[-1] == "done" and "running" in kinds, states
    assert states[-1][1] == 1.0


def test_fluidsynth_job_renders_a_midi_file_like_jackgen_render(jackgen, tmp_path):
    from jackgen.generators.compose import compose

    midi = compose("house", "G major", 126, 4, 3.0).write_stems(tmp_path / "song")["full"]
    jg = jackgen()
    r = jg.api("POST", "/api/music-generation", {"prompt": "", "backend": "fluidsynth", "midi": str(midi),
                                                 "output_format": "flac"}, expect=202)
    job = job_done(jg, r["job_id"])
    assert job["status"] == "done", job
    take, rate = sf.read(job["outputs"][0]["path"], dtype="float32")
    assert job["outputs"][0]["path"].endswith(".flac") and rate == 48000
    ref_path = tmp_path / "ref.wav"
    p = jg.cli("render", str(midi), str(ref_path), "--tail", "1.0")
    assert p.returncode == 0, p.stderr
    ref, _ = sf.read(str(ref_path), dtype="float32")
    assert take.shape == ref.shape
    assert np.abs(take - ref).max() < 2e-6 * 8  # 24-bit FLAC of the same samples


def test_cancel_a_running_job_and_priorities(jackgen):
    jg = jackgen()
    # a long job streaming into a track, cancelled while it renders
    r = jg.api("POST", "/api/music-generation", {"prompt": "house", "duration": 600, "track": 4, "seed": 1},
               expect=202)
    wait_for(lambda: jg.status()["tracks"][3]["state"] == "playing", 20, 0.02, "track 4 to play")
    job = jg.api("DELETE", f"/api/jobs/{r['job_id']}")
    assert job["status"] == "cancelled", job
    wait_for(lambda: jg.status()["tracks"][3]["state"] in ("aborted", "idle", "ended"), 10, 0.05, "track 4 to stop")
    assert not list((jg.sessions / "test" / "audio_gen").glob("*"))  # no take, not even a .part
    # one worker, one job at a time: a high-priority job overtakes the queued low ones
    ids = [jg.api("POST", "/api/music-generation", {"prompt": "x", "duration": 120, "priority": "low", "seed": k},
                  expect=202)["job_id"] for k in range(3)]
    high = jg.api("POST", "/api/music-generation", {"prompt": "x", "duration": 1, "priority": "high"},
                  expect=202)["job_id"]
    for jid in ids + [high]:
        job_done(jg, jid)

    def started(jid):
        return next(e["t"] for e in events_of(jg, jid) if e["event"] == "started")

    order = sorted(ids + [high], key=started)
    assert order[:2] == [ids[0], high], order  # ids[0] was already running
    assert order[2:] == ids[1:]



def test_a_musicgen_worker_that_cannot_load_fails_jobs_with_the_reason(jackgen, tmp_path):
    (tmp_path / "no-weights").mkdir()
    jg = jackgen(extra_toml=f'[generators]\nmusicgen_model = "{tmp_path / "no-weights"}"\nmusicgen_device = "cpu"\n')
    r = jg.api("POST", "/api/music-generation", {"prompt": "x", "duration": 1, "backend": "musicgen"}, expect=202)
    job = job_done(jg, r["job_id"], timeout_s=120)
    assert job["status"] == "failed" and "has no state_dict.bin" in job["error"], job
    e = jg.api("POST", "/api/music-generation", {"prompt": "x", "duration": 1, "backend": "musicgen"}, expect=503)
    assert "cannot run here" in e["error"]
    # the other backends are unaffected
    r = jg.api("POST", "/api/music-generation", {"prompt": "x", "duration": 1}, expect=202)
    assert job_done(jg, r["job_id"])["status"] == "done"
    assert jg.api("GET", "/health")["workers"]["musicgen"]["error"]

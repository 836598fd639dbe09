"""The library, /health and /metrics on a running jackgen: real jobs, real servers, real faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import wait_for
from tests.integration.test_survive import procs
from tests.library_helpers import make_take


def generate(jg, prompt: str, seconds: float = 1.0) -> str:
    jid = jg.api("POST", "/api/music-generation", {"prompt": prompt, "duration": seconds}, expect=202)["job_id"]
    wait_for(lambda: jg.api("GET", f"/api/jobs/{jid}")["status"] in ("done", "failed"), 60, 0.1, f"job {jid}")
    assert jg.api("GET", f"/api/jobs/{jid}")["status"] == "done"
    return jid


def library(jg, **q) -> dict:
    return jg.api("GET", "/api/generations?" + "&".join(f"{k}={v}" for k, v in q.items()))


def cli_elsewhere(jg, tmp_path, *args: str) -> subprocess.CompletedProcess:
    """The CLI from another folder than the daemon's, with its config."""
    other = tmp_path / "elsewhere"
    other.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "jackgen.daemon.cli", *args, "--config", str(jg.config)],
                          capture_output=True, text=True, timeout=60, cwd=other)


def test_takes_land_in_the_library_and_it_survives_a_control_restart(jackgen, tmp_path):
    old = make_take(tmp_path / "sessions", "last-week", "dusty boom bap with vinyl crackle", bpm=90, key="D minor",
                    style="boombap")  # made before the library existed: imported at start
    jg = jackgen()
    wait_for(lambda: _total(jg) == 1, 20, 0.2, "the old take imported")
    a = generate(jg, "dark trap beat with heavy 808s")
    b = generate(jg, "deep house groove with warm chords")
    wait_for(lambda: library(jg)["total"] == 3, 10, 0.1, "both jobs' takes in the library")
    g = jg.api("GET", f"/api/generations/{a}")
    assert g["job_id"] == a and g["backend"] == "procedural" and g["session"] == "test" and g["params"]["prompt"]
    assert g["sample_rate"] == 48000 and g["seconds"] == pytest.approx(1.0) and g["loudness_lufs"] < 0
    assert os.path.isfile(g["path"]) and g["stems"]
    assert [x["take"] for x in library(jg, style="house")["generations"]] == [b]
    assert [x["take"] for x in library(jg, bpm_min=80, bpm_max=95)["generations"]] == [old.stem]
    sim = jg.api("GET", "/api/generations/similar?prompt=hard%20trap%20with%20808%20bass&k=2")
    assert sim["mode"] == "embedding" and sim["results"][0]["take"] == a

    ctl = procs(jg)["control"]
    os.kill(ctl, signal.SIGKILL)
    late = make_take(tmp_path / "sessions", "test", "made while control was down")
    wait_for(lambda: _supervised(jg, "control") not in (None, ctl), 15, 0.2, "a new control")
    wait_for(lambda: _total(jg) == 4, 20, 0.2, "the library back, with the take made meanwhile")
    c = generate(jg, "liquid drum and bass")
    wait_for(lambda: _total(jg) == 5, 10, 0.1, "a take after the restart recorded once")
    assert len({x["take"] for x in library(jg, limit=50)["generations"]}) == 5  # nothing doubled

    r = cli_elsewhere(jg, tmp_path, "takes", "list", "--json")
    assert r.returncode == 0, r.stderr
    assert {x["take"] for x in json.loads(r.stdout)["generations"]} == {a, b, c, old.stem, late.stem}
    r = cli_elsewhere(jg, tmp_path, "takes", "similar", "vinyl crackle boom bap", "-k", "1")
    assert r.returncode == 0 and old.stem in r.stdout, r.stdout + r.stderr
    r = cli_elsewhere(jg, tmp_path, "takes", "search", "house")
    assert r.returncode == 0 and b in r.stdout and a not in r.stdout
    # a take of another session by its id, and a library number, work where a file does
    r = cli_elsewhere(jg, tmp_path, "load", "3", old.stem)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["armed"] == str(old.with_suffix(".wav"))
    num = jg.api("GET", f"/api/generations/{c}")["id"]
    r = cli_elsewhere(jg, tmp_path, "play", "4", f"#{num}")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: jg.status()["tracks"][3]["source"].endswith(f"{c}.wav"), 10, 0.1, "track 4 playing take c")
    # rm to the trash, restore
    r = cli_elsewhere(jg, tmp_path, "takes", "rm", b)
    assert r.returncode == 0 and "trash" in r.stderr
    assert _total(jg) == 4 and not os.path.exists(g["path"].replace(a, b))
    assert jg.api("POST", "/api/music-generation", {"prompt": "x", "duration": 0.5}, expect=202)
    assert jg.api("GET", "/api/generations/99999", expect=404)["error"]
    assert jg.api("GET", "/api/generations?limit=100000", expect=400)["error"]
    assert jg.api("GET", "/api/generations/similar?prompt=&k=3", expect=400)["error"]
    r = cli_elsewhere(jg, tmp_path, "takes", "restore", b)
    assert r.returncode == 0 and os.path.exists(g["path"].replace(a, b))
    # a file a session plays is remembered as used by it (audio_refs)
    import numpy as np
    import soundfile as sf

    clip = tmp_path / "clip.wav"
    sf.write(str(clip), np.zeros((4800, 2), np.float32), 48000)
    jg.api("POST", "/api/tracks/5/play", {"file": str(clip)})
    import sqlite3

    db = next((tmp_path / "data" / "library").glob("*.sqlite"))

    def noted():
        with sqlite3.connect(db) as c:
            return c.execute("SELECT path FROM audio_refs").fetchall()

    assert wait_for(noted, 10, 0.1, "the clip noted") == [(str(clip),)]


def _total(jg) -> int | None:
    try:
        r = httpx.get(jg.url + "/api/generations", timeout=2)
        return r.json().get("total") if r.status_code == 200 else None
    except httpx.HTTPError:
        return None


def _health(jg) -> tuple[int, dict]:
    r = httpx.get(jg.url + "/health", timeout=5)
    return r.status_code, r.json()


def _failing(jg, part: str) -> bool:
    code, h = _health(jg)
    return code == 503 and part in h["failing"]


def _ok(jg) -> bool:
    code, h = _health(jg)
    return code == 200 and h["status"] == "ok"


def test_health_names_a_stopped_or_dead_redis_and_a_killed_engine(jackgen, tmp_path):
    jg = jackgen()
    wait_for(lambda: _ok(jg), 20, 0.2, "healthy")
    code, h = _health(jg)
    assert h["jack_server"]["sample_rate"] == 48000 and h["jack_server"]["period_frames"] == 512
    assert h["database"]["ok"] and h["database"]["latency_ms"] < 1000 and h["redis"]["latency_ms"] < 1000
    assert h["engine"]["last_status_age_s"] < 2 and h["disk"]["free_bytes"] > 0
    assert {w["backends"][0] for w in h["workers"]["live"]} >= {"procedural"}

    redis = _redis_pid(jg)
    os.kill(redis, signal.SIGSTOP)  # hung, not dead: its socket is there and nobody answers
    try:
        wait_for(lambda: _failing(jg, "redis"), 10, 0.2, "503 naming redis while it is stopped")
        assert "PING" in _health(jg)[1]["redis"]["error"]
    finally:
        os.kill(redis, signal.SIGCONT)
    wait_for(lambda: _ok(jg), 20, 0.2, "200 once redis answers again")
    os.kill(redis, signal.SIGKILL)
    wait_for(lambda: _failing(jg, "redis") or _redis_pid(jg) not in (None, redis), 10, 0.05, "redis down or back")
    wait_for(lambda: _ok(jg), 30, 0.2, "200 once the supervisor has redis back")

    sup = jg.proc.pid
    os.kill(sup, signal.SIGSTOP)  # so the engine stays dead until we let the supervisor go on
    try:
        os.kill(procs(jg)["engine"], signal.SIGKILL)
        wait_for(lambda: _failing(jg, "engine"), 10, 0.2, "503 naming the engine")
    finally:
        os.kill(sup, signal.SIGCONT)
    wait_for(lambda: _ok(jg), 30, 0.2, "200 once the engine is back")
    r = jg.cli("health")
    assert r.returncode == 0 and "database" in r.stdout and "ok" in r.stdout


def _redis_pid(jg) -> int | None:
    return _supervised(jg, "redis")


def _supervised(jg, role: str) -> int | None:
    """The pid the supervisor gives ``role`` (read from its processes.json: control may be down)."""
    from tests.integration.test_survive import _runtime

    try:
        return json.loads((_runtime(jg) / "processes.json").read_text())[role]["pid"]
    except (OSError, ValueError, KeyError):
        return None


def test_health_names_the_database_while_postgresql_is_down(jackgen, own_postgres, tmp_path):
    jg = jackgen(f'[database]\nurl = "{own_postgres.url}"\n')
    wait_for(lambda: _ok(jg), 20, 0.2, "healthy on PostgreSQL")
    assert _health(jg)[1]["database"]["backend"] == "postgresql"
    a = generate(jg, "aggressive drill with sliding 808s")
    wait_for(lambda: _total(jg) == 1, 10, 0.1, "the take in PostgreSQL")
    own_postgres.stop()
    wait_for(lambda: _failing(jg, "database"), 15, 0.2, "503 naming the database")
    assert jg.api("GET", "/api/generations", expect=503)["error"]
    r = jg.cli("health")
    assert r.returncode == 1 and "database" in r.stdout
    assert jg.status()["engine_running"]  # the rest plays on
    b = generate(jg, "made while the database was down")  # the job is not lost; its take waits on disk
    own_postgres.start()
    wait_for(lambda: _ok(jg), 30, 0.3, "200 once PostgreSQL is back")
    assert jg.api("GET", f"/api/generations/{a}")["take"] == a
    ctl = procs(jg)["control"]
    os.kill(ctl, signal.SIGTERM)  # a restarted control reconciles: the take made meanwhile is found
    wait_for(lambda: _total(jg) == 2, 30, 0.3, "the take made while the database was down, recorded")
    assert jg.api("GET", f"/api/generations/{b}")["take"] == b


def _metrics(jg) -> dict:
    r = httpx.get(jg.url + "/metrics", timeout=5)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(r.text)}


def _value(fams: dict, name: str, sample: str | None = None, **labels) -> float:
    fam = fams[name]
    for s in fam.samples:
        if (sample is None or s.name == sample) and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise KeyError((name, sample, labels))


def test_metrics_parse_and_count_a_provoked_xrun_and_the_jobs(jackgen, tmp_path):
    jg = jackgen()
    generate(jg, "trap", 0.5)
    m = _metrics(jg)
    assert {"jackgen_xruns", "jackgen_underruns", "jackgen_callback_seconds", "jackgen_dsp_load_ratio",
            "jackgen_queue_depth", "jackgen_jobs", "jackgen_job_duration_seconds",
            "jackgen_time_to_first_audio_seconds", "jackgen_process_restarts", "jackgen_osc_messages",
            "jackgen_plugin_load_failures"} <= set(m)
    assert _value(m, "jackgen_jobs", "jackgen_jobs_total", status="done", backend="procedural") == 1
    assert _value(m, "jackgen_job_duration_seconds", "jackgen_job_duration_seconds_count", backend="procedural") == 1
    blocks = _value(m, "jackgen_callback_seconds", "jackgen_callback_seconds_count")
    assert blocks > 0 and _value(m, "jackgen_callback_seconds", "jackgen_callback_seconds_bucket", le="+Inf") == blocks
    assert _value(m, "jackgen_queue_depth", backend="procedural", priority="normal") == 0
    before = _value(m, "jackgen_xruns", "jackgen_xruns_total")

    def stalled() -> bool:  # the engine frozen for a few periods: JACK runs its cycles without it
        pid = procs(jg)["engine"]
        os.kill(pid, signal.SIGSTOP)
        time.sleep(0.08)
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.5)
        return _value(_metrics(jg), "jackgen_xruns", "jackgen_xruns_total") > before

    wait_for(stalled, 20, 0.0, "an xrun counted in /metrics")
    m = _metrics(jg)
    assert _value(m, "jackgen_callback_seconds", "jackgen_callback_seconds_count") > blocks

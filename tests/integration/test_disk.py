"""A full disk under a running daemon (a 6 MB tmpfs holds the sessions): a take, a bounce, a
recording and the session file each fail clearly, leave no half file under a final name, the
session file keeps its last good version, the music goes on; once there is room, nothing is lost."""

from __future__ import annotations

import errno
import json
import subprocess

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import Jackgen, wait_for
from tests.integration.test_generate import job_done

pytestmark = pytest.mark.integration


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN): {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(folder) -> int:
    """Fill the disk under ``folder`` to the last byte; returns the bytes written."""
    n = 0
    with open(folder / "filler", "wb", buffering=0) as f:
        block = b"\0" * 65536
        try:
            while True:
                f.write(block)
                f.flush()
                n += len(block)
        except OSError as e:
            assert e.errno == errno.ENOSPC
    with open(folder / "filler2", "wb", buffering=0) as f:  # the last partial block
        try:
            while True:
                f.write(b"\0")
                f.flush()
        except OSError:
            pass
    return n


def final_and_part_files(folder) -> tuple[list[str], list[str]]:
    names = [p.name for p in folder.rglob("*") if p.is_file() and not p.name.startswith("filler")]
    return [n for n in names if not n.startswith(".")], [n for n in names if n.startswith(".")]


def test_disk_full_fails_clearly_keeps_the_last_good_session_and_the_music(jack_server, small_disk, tmp_path):
    sessions = small_disk / "sessions"
    t = np.arange(48000 * 60) / 48000
    tone = tmp_path / "tone.wav"  # on another disk: playing it needs no room on the full one
    sf.write(str(tone), np.repeat((0.1 * np.sin(2 * np.pi * 220 * t))[:, None], 2, 1).astype(np.float32), 48000)
    jg = Jackgen(tmp_path)
    jg.config.write_text(jg.config.read_text().replace(f'sessions_dir = "{jg.sessions}"', f'sessions_dir = "{sessions}"'))
    jg.sessions = sessions
    try:
        _run(jg, small_disk, sessions, tone)
    finally:
        jg.stop()


def _run(jg, small_disk, sessions, tone) -> None:
    jg.start()
    jg.api("POST", "/api/tracks/1/play", {"file": str(tone)})
    jg.api("POST", "/api/tracks/1/gain", {"db": -3.0})
    session_file = sessions / "test" / "session.json"
    wait_for(lambda: json.loads(session_file.read_text())["tracks"][0]["gain_db"] == -3.0, 5, 0.1, "the save")
    good = session_file.read_text()
    fill(small_disk)

    jg.api("POST", "/api/tracks/1/gain", {"db": -9.0})  # the save fails: the last good file stays
    wait_for(lambda: "cannot write" in jg.log.read_text() and "session.json" in jg.log.read_text(), 5, 0.1,
             "the failed save to be logged")
    assert session_file.read_text() == good

    job = jg.api("POST", "/api/music-generation", {"prompt": "house", "duration": 4, "seed": 1}, expect=202)["job_id"]
    failed = job_done(jg, job, 60)
    assert failed["status"] == "failed" and "disk full" in failed["error"], failed
    audio = sessions / "test" / "audio_gen"
    finals, parts = final_and_part_files(audio) if audio.exists() else ([], [])
    assert not [n for n in finals if n.endswith(".wav")] and not parts, (finals, parts)

    out = sessions / "test" / "bounces" / "night.wav"
    b = jg.cli("bounce", str(out), "--stems")
    assert b.returncode != 0 and "disk full" in b.stderr, b.stderr[-1500:]
    r = jg.cli("record", "1", str(sessions / "test" / "rec.wav"))
    assert r.returncode != 0 and "disk full" in r.stderr, r.stderr[-1500:]
    finals, parts = final_and_part_files(sessions)
    assert "night.wav" not in finals and "rec.wav" not in finals and not [p for p in parts if p.endswith(".part")], (
        finals, parts)

    st = jg.status()
    assert st["tracks"][0]["state"] == "playing" and st["engine_running"]  # the music went on

    for f in ("filler", "filler2"):
        (small_disk / f).unlink()
    jg.api("POST", "/api/tracks/1/gain", {"db": -6.0})
    wait_for(lambda: json.loads(session_file.read_text())["tracks"][0]["gain_db"] == -6.0, 5, 0.1, "a save again")
    jg.api("POST", f"/api/jobs/{job}/retry", expect=None)
    done = job_done(jg, job, 60)
    assert done["status"] == "done", done
    assert sf.info(done["outputs"][0]["path"]).frames == 4 * 48000

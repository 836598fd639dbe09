"""The CLI as a user meets it: another terminal and another folder than the daemon's, files from
their own home folder, a session with played (not armed) tracks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import Jackgen, wait_for

pytestmark = pytest.mark.integration


def _tone(path: Path, seconds: float = 1.0, amp: float = 0.25) -> Path:
    t = np.arange(int(seconds * 48000)) / 48000
    x = (amp * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    sf.write(str(path), np.stack([x, x], axis=1), 48000, subtype="FLOAT")
    return path


def _cli(cwd: Path, *args: str, config: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "jackgen.daemon.cli", *args] + (["--config", str(config)] if config else [])
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture
def daemon_in_its_folder(jack_server, tmp_path):
    """A jackgen started in its own folder with a relative sessions folder, as `cd ~/music && jackgen run`."""
    jg = Jackgen(tmp_path)
    home = tmp_path / "music"
    home.mkdir()
    jg.config.write_text(jg.config.read_text().replace(f'sessions_dir = "{jg.sessions}"', 'sessions_dir = "sessions"')
                         .replace(f'media_dirs = ["{tmp_path}"]', "media_dirs = []"))
    jg.sessions = home / "sessions"
    jg.proc = subprocess.Popen([sys.executable, "-m", "jackgen.daemon.cli", "run", "--config", str(jg.config)],
                               cwd=home, stdout=open(jg.log, "ab"), stderr=subprocess.STDOUT)
    try:
        wait_for(jg._healthy, 30, 0.1, "jackgen to become healthy")
        yield jg
    finally:
        jg.stop()


def test_a_file_from_the_users_home_is_imported_and_a_bounce_elsewhere_renders_what_plays(daemon_in_its_folder,
                                                                                          tmp_path):
    jg = daemon_in_its_folder
    mine = tmp_path / "home" / "beats"
    mine.mkdir(parents=True)
    beat = _tone(mine / "x.wav")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    # over HTTP the file stays refused: it is outside the folders the daemon reads
    e = jg.api("POST", "/api/tracks/3/play", {"file": str(beat)}, expect=403)
    assert "outside the folders" in e["error"]

    # the local CLI imports it into the session's media folder and plays the copy, saying so
    r = _cli(elsewhere, "play", "3", "../home/beats/x.wav", config=jg.config)
    assert r.returncode == 0, r.stderr
    copy = jg.sessions / "test" / "media" / "x.wav"
    assert "imported" in r.stderr and str(copy) in r.stderr
    assert copy.is_file() and np.array_equal(sf.read(str(copy))[0], sf.read(str(beat))[0])
    wait_for(lambda: jg.status()["tracks"][2]["source"] == str(copy), 10, what="track 3 to play the copy")
    again = _cli(elsewhere, "load", "4", str(beat), config=jg.config)  # the same file: not copied twice
    assert again.returncode == 0 and "already imported" in again.stderr
    assert sorted(p.name for p in copy.parent.iterdir()) == ["x.wav"]

    # a bounce from another folder and terminal uses the daemon's session (its sessions folder is
    # relative to the daemon's folder, not this one) and renders the played track too
    b = _cli(elsewhere, "bounce", "out.wav", "--format", "32f", "--stems", config=jg.config)
    assert b.returncode == 0, b.stderr
    assert "using the running jackgen's session 'test'" in b.stderr
    stems = sorted(p.name for p in (elsewhere / "out").iterdir())
    assert stems == ["track_03.wav", "track_04.wav"], stems
    y, _ = sf.read(str(elsewhere / "out" / "track_03.wav"))
    assert np.abs(y).max() == pytest.approx(0.25, abs=1e-3)
    assert not (elsewhere / "sessions").exists()


def test_remote_commands_from_another_folder_with_the_config_in_the_environment(jackgen, tmp_path):
    jg = jackgen()
    other = tmp_path / "other"
    other.mkdir()
    env = {**os.environ, "JACKGEN_CONFIG": str(jg.config)}
    r = _cli(other, "gain", "2", "-7.5", env=env)
    assert r.returncode == 0, r.stderr
    assert jg.status()["tracks"][1]["gain_db"] == -7.5
    r = _cli(other, "tempo", "96", env=env)
    assert r.returncode == 0 and jg.status()["tempo_bpm"] == 96.0
    h = _cli(other, "health", "--json", env=env)
    assert h.returncode == 0 and '"jack": true' in h.stdout
    bad = _cli(other, "gain", "2", "loud", env=env)
    assert bad.returncode == 2  # typer refuses a non-number before any request


def test_the_cli_says_clearly_when_no_daemon_runs(tmp_path):
    cfg = tmp_path / "j.toml"
    cfg.write_text("[control]\nhttp_port = 1\n")
    r = _cli(tmp_path, "status", config=cfg)
    assert r.returncode == 1 and "cannot reach jackgen control at http://127.0.0.1:1" in r.stderr
    cfg.write_text("[control\n")
    r = _cli(tmp_path, "status", config=cfg)
    assert r.returncode == 2 and "not valid TOML" in r.stderr


def test_the_demo_prints_whole_paths_on_an_80_column_terminal(jack_server, tmp_path):
    from tests.conftest import free_port

    deep = tmp_path / "a-rather-long-folder-name-for-music-projects" / "and-another-one-below-it"
    deep.mkdir(parents=True)
    cfg = deep / "jackgen.toml"
    cfg.write_text(f'instance = "demo-{os.getpid()}"\n[jack]\nautoconnect_master = false\n'
                   f'[control]\nhttp_port = {free_port()}\nosc_port = {free_port()}\nsessions_dir = "{deep}/sessions"\n'
                   'midi_api = "none"\n[generators]\nworkers = ["procedural"]\n')
    r = subprocess.run([sys.executable, "-m", "jackgen.daemon.cli", "demo", "--seconds", "2", "--config", str(cfg)],
                       cwd=deep, capture_output=True, text=True, timeout=180, env={**os.environ, "COLUMNS": "80"})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    recordings = list((deep / "sessions" / "demo" / "recordings").glob("master-*.wav"))
    assert len(recordings) == 1 and str(recordings[0]) in r.stdout, r.stdout
    take = next((deep / "sessions" / "demo" / "audio_gen").glob("*.wav"))
    assert str(take) in r.stdout
    assert re.search(r"library  #\d+, -?\d", r.stdout), r.stdout  # the take is in the library, with its loudness
    assert not [line for line in r.stdout.splitlines() if "/sessions/" in line and "…" in line], r.stdout

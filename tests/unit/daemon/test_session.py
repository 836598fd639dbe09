"""The one session model: migration, checks, and what bounce takes from it (no JACK needed)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from jackgen.daemon.cli.bounce import bounce
from jackgen.daemon.config import load_config
from jackgen.daemon.control.session import (SESSION_VERSION, SessionError, live_chain, read_session,
                                            write_session)
from tests.unit.plugins.test_plugins import crashing_bundle

RATE = 48000


def _session(tmp_path, tracks, master=None, version=1):
    cfg = load_config(None, {"control.sessions_dir": str(tmp_path / "sessions")})
    folder = cfg.session_dir("s")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "session.json").write_text(json.dumps({"version": version, "tracks": tracks, "master": master or {}}))
    return cfg, folder


def _tone(path, seconds=1.0, amp=0.25):
    t = np.arange(int(seconds * RATE)) / RATE
    x = (amp * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    sf.write(str(path), np.stack([x, x], axis=1), RATE, subtype="FLOAT")
    return str(path)


def test_version_1_files_migrate_and_bad_values_are_reset(tmp_path):
    cfg, folder = _session(tmp_path, [{"gain_db": -6, "pan": 7, "mute": 1, "armed": "/x.wav",
                                       "chain": [{"plugin": "Gain"}, "junk", {"no": "plugin"}]}, "junk"],
                           master={"gain_db": "loud", "eq": [{"type": "nope"}]})
    s = read_session(folder)
    t0 = s.tracks[0]
    assert (t0.gain_db, t0.pan, t0.mute, t0.armed, t0.clip) == (-6.0, 0.0, True, "/x.wav", None)
    assert t0.chain == [{"plugin": "Gain"}] and len(s.tracks) == 16
    assert s.master["gain_db"] == 0.0 and all(b["type"] == "off" for b in s.master["eq"])
    write_session(folder, s)
    saved = json.loads((folder / "session.json").read_text())
    assert saved["version"] == SESSION_VERSION == 2 and saved["tracks"][0]["clip"] is None
    assert read_session(folder).tracks[0] == t0  # round trip


def test_missing_unreadable_and_future_sessions_are_clear_errors(tmp_path):
    cfg, folder = _session(tmp_path, [], version=99)
    with pytest.raises(SessionError, match="newer than this jackgen reads"):
        read_session(folder)
    (folder / "session.json").write_text("{not json")
    with pytest.raises(SessionError, match="unreadable"):
        read_session(folder)
    with pytest.raises(SessionError, match="session 'nope' does not exist"):
        read_session(folder.parent / "nope")


def test_bounce_renders_played_tracks_not_only_armed_ones(tmp_path):
    cfg, folder = _session(tmp_path, [{"armed": _tone(tmp_path / "a.wav")}, {"clip": _tone(tmp_path / "b.wav")}],
                           version=2)
    info = bounce(cfg, "s", str(tmp_path / "out.wav"), fmt="32f", stems=True)
    assert info["tracks"] == [1, 2]
    stem2, _ = sf.read(str(tmp_path / "out" / "track_02.wav"))
    assert np.abs(stem2).max() == pytest.approx(0.25, abs=1e-3)


def test_bounce_leaves_out_track_plugins_marked_failed(tmp_path):
    """A plugin that crashed its host is marked failed in the session; bounce must not load it again.
    The bundle here segfaults whoever loads it, so loading it would kill the bounce."""
    plugdir = tmp_path / "plugins"
    plugdir.mkdir()
    bundle = crashing_bundle(plugdir)
    crashed = {"plugin": bundle, "kind": "vst3", "name": "Crash", "params": {},
               "failed": "crashed the feeder (SIGSEGV) while loading"}
    gain = {"plugin": "Gain", "kind": "builtin", "name": "Gain", "params": {"gain_db": -6.0}}
    cfg, folder = _session(tmp_path, [{"armed": _tone(tmp_path / "a.wav"), "chain": [crashed, gain]}], version=2)
    assert live_chain(read_session(folder).tracks[0].chain) == [gain]
    conf = tmp_path / "jackgen.toml"
    conf.write_text(f'[control]\nsessions_dir = "{tmp_path / "sessions"}"\nhttp_port = 1\n'
                    f'[plugins]\nvst3_dirs = ["{plugdir}"]\n')
    r = subprocess.run([sys.executable, "-m", "jackgen.daemon.cli", "bounce", str(tmp_path / "o.wav"), "--session",
                        "s", "--format", "32f", "--stems", "--config", str(conf)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    stem, _ = sf.read(str(tmp_path / "o" / "track_01.wav"))
    assert np.abs(stem).max() == pytest.approx(0.25 * 10 ** (-6 / 20), rel=0.02)  # the Gain after it still ran

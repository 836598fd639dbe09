"""Offline bounce with a loudness target (no JACK needed: bounce drives the engine's block function itself)."""

from __future__ import annotations

import json

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from jackgen.daemon.cli.bounce import LUFS_TOLERANCE, bounce
from jackgen.daemon.config import load_config
from jackgen.common.errors import JackgenError
from jackgen.dsp.mix import true_peak_dbfs

RATE = 48000


def session(tmp_path, master=None):
    cfg = load_config(None, {"control.sessions_dir": str(tmp_path / "sessions")})
    folder = cfg.session_dir("loud")
    folder.mkdir(parents=True)
    t = np.arange(6 * RATE) / RATE
    rng = np.random.default_rng(2)
    music = (0.05 * np.sin(2 * np.pi * 110 * t) * (1 + np.sin(2 * np.pi * 2 * t)))[:, None] \
        + 0.02 * rng.standard_normal((t.size, 2))
    sf.write(str(folder / "a.wav"), music.astype(np.float32), RATE, subtype="FLOAT")
    tracks = [{"armed": str(folder / "a.wav")}] + [{} for _ in range(15)]
    (folder / "session.json").write_text(json.dumps({"tracks": tracks, "master": master or {}}))
    return cfg


@pytest.mark.parametrize("target", [-14.0, -9.0])
def test_loudness_target_is_met_and_the_true_peak_ceiling_held(tmp_path, target):
    cfg = session(tmp_path)
    seen = []
    info = bounce(cfg, "loud", str(tmp_path / "out.wav"), fmt="24", lufs=target, progress=seen.append)
    y, rate = sf.read(str(tmp_path / "out.wav"), dtype="float64")
    measured = pyloudnorm.Meter(rate).integrated_loudness(y)
    assert abs(measured - target) <= LUFS_TOLERANCE, (measured, info["passes"])
    assert info["passes"][0]["integrated_lufs"] < target - 5, "the source starts well under the target"
    assert info["master"]["gain_db"] > 5 and true_peak_dbfs(y) <= -0.3 + 0.01  # 24-bit rounding
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
    assert y.shape[0] == 6 * RATE  # the master is aligned and cut to the session, look-ahead removed


def test_bounce_uses_the_sessions_master_settings_and_refuses_absurd_targets(tmp_path):
    cfg = session(tmp_path, master={"gain_db": 6.0, "eq": [{"type": "highpass", "freq": 200.0}]})
    info = bounce(cfg, "loud", str(tmp_path / "a.wav"), fmt="32f")
    flat = bounce(load_config(None, {"control.sessions_dir": str(tmp_path / "sessions")}), "loud",
                  str(tmp_path / "b.wav"), fmt="32f")
    assert info["master"]["gain_db"] == 6.0 and info["master"]["eq"][0]["type"] == "highpass"
    assert flat["master"]["gain_db"] == 6.0  # the same session file: the same settings
    (tmp_path / "sessions" / "loud" / "session.json").write_text(json.dumps(
        {"tracks": [{"armed": str(tmp_path / "sessions" / "loud" / "a.wav")}]}))
    flat = bounce(cfg, "loud", str(tmp_path / "b.wav"), fmt="32f")
    assert flat["master"]["gain_db"] == 0.0
    a, _ = sf.read(str(tmp_path / "a.wav"))
    b, _ = sf.read(str(tmp_path / "b.wav"))
    # +6 dB alone would double the level; the 200 Hz high-pass takes most of the 110 Hz tone away
    ratio = np.sqrt(np.mean(a ** 2) / np.mean(b ** 2))
    assert 0.6 < ratio < 1.5, ratio
    with pytest.raises(JackgenError, match="loudness target"):
        bounce(cfg, "loud", str(tmp_path / "c.wav"), lufs=12.0)

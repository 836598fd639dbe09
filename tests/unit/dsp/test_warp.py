"""Warp to tempo, on a procedural take: the tempo lands, the pitch stays."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import soundfile as sf

from jackgen.generators.backends import ProceduralBackend, TakeContext
from jackgen.generators.job import JobSpec
from tests.unit.generators.test_procedural import estimate_key, estimate_tempo


def test_warp_a_take_to_the_session_tempo(tmp_path):
    import librosa

    b = ProceduralBackend()
    try:
        spec = JobSpec.from_dict({"prompt": "", "duration": 16, "style": "house", "bpm": 100, "key": "G major",
                                  "seed": 5})
        audio = np.concatenate([c for _, c in b.generate(spec, TakeContext(48000, tmp_path, ["t"]))])
    finally:
        b.close()
    take = tmp_path / "take.wav"
    sf.write(str(take), audio, 48000, subtype="FLOAT")
    (tmp_path / "take.json").write_text(json.dumps({"bpm": 100.0}))

    def warp(*args):
        p = subprocess.run([sys.executable, "-m", "jackgen.daemon.cli", "warp", str(take), *args],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    r = warp("--to", "120")
    assert r["from"] == "take metadata" and r["from_bpm"] == 100.0
    y, rate = sf.read(r["path"], dtype="float32")
    assert abs(y.shape[0] / rate - 16 * 100 / 120) < 0.05
    mono = librosa.resample(y.mean(axis=1), orig_sr=rate, target_sr=22050)
    assert abs(estimate_tempo(mono, 22050) - 120) / 120 <= 0.02
    before = librosa.resample(audio.mean(axis=1), orig_sr=48000, target_sr=22050)
    assert estimate_key(mono, 22050) == estimate_key(before, 22050)  # same pitch: same key
    (tmp_path / "take.json").unlink()
    r = warp("--to", "90", "--out", str(tmp_path / "slow.wav"))
    assert r["from"] == "estimated" and abs(r["from_bpm"] - 100) / 100 <= 0.02
    p = subprocess.run([sys.executable, "-m", "jackgen.daemon.cli", "warp", str(take), "--to", "1000"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "--to must be from 20 to 400" in p.stderr

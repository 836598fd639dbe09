"""`jackgen render` / the fluidsynth backend sound like the fluidsynth command line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import soundfile as sf

from jackgen.generators.clip import find_soundfont
from jackgen.generators.compose import compose


def test_render_matches_the_fluidsynth_cli(tmp_path):
    midi = compose("lofi", "A minor", 90, 9, 12.0).write_stems(tmp_path / "stems")["full"]
    ours = tmp_path / "ours.wav"
    p = subprocess.run([sys.executable, "-m", "jackgen.daemon.cli", "render", str(midi), str(ours)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    cli = tmp_path / "cli.wav"
    subprocess.run(["fluidsynth", "-ni", "-q", "-F", str(cli), "-r", "48000", find_soundfont(), str(midi)],
                   check=True, capture_output=True, timeout=120)
    a, ra = sf.read(str(ours), dtype="float32")
    b, rb = sf.read(str(cli), dtype="float32")
    assert ra == rb == 48000 and a.shape == b.shape  # same length: the render ends where the CLI's does
    err = a - b
    snr_db = 10 * np.log10(np.sum(b.astype(np.float64) ** 2) / np.sum(err.astype(np.float64) ** 2))
    assert np.abs(b).max() > 0.05
    assert snr_db > 55 and np.abs(err).max() < 2 / 32768  # the CLI's 16-bit dither is the difference


def test_render_rejects_what_it_cannot_read(tmp_path):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not a midi file")
    p = subprocess.run([sys.executable, "-m", "jackgen.daemon.cli", "render", str(bad), str(tmp_path / "o.wav")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "not a MIDI file" in p.stderr
    p = subprocess.run([sys.executable, "-m", "jackgen.daemon.cli", "render", str(tmp_path / "none.mid"),
                        str(tmp_path / "o.wav")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "does not exist" in p.stderr

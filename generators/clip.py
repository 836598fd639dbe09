"""A short musical clip rendered with FluidSynth and the General MIDI SoundFont.

Used by ``jackgen demo`` (and tests) to have something audible that needs no
model: piano chords, a bass line and an arpeggio over i-VI-III-VII in A minor.
The procedural generator (its own issue) grows out of this.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

SOUNDFONT_CANDIDATES = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",
)


def find_soundfont(explicit: str | None = None) -> str:
    for cand in ([explicit] if explicit else []) + [os.environ.get("JACKGEN_SOUNDFONT") or ""] + list(SOUNDFONT_CANDIDATES):
        if cand and Path(cand).is_file():
            return cand
    raise FileNotFoundError(
        "no General MIDI SoundFont found: install Debian's fluid-soundfont-gm "
        "(apt-get install fluid-soundfont-gm) or set JACKGEN_SOUNDFONT"
    )


def _events(seconds: float, bpm: float) -> list[tuple[float, int, int, int]]:
    """(time_s, channel, note, velocity); velocity 0 is note-off."""
    beat = 60.0 / bpm
    chords = [(57, 60, 64), (53, 57, 60), (48, 52, 55), (55, 59, 62)]  # Am F C G
    bass = [45, 41, 48, 43]
    ev: list[tuple[float, int, int, int]] = []
    bar = 0
    while bar * 4 * beat < seconds:
        t0 = bar * 4 * beat
        ch = chords[bar % 4]
        for n in ch:
            ev += [(t0, 0, n, 80), (t0 + 4 * beat * 0.95, 0, n, 0)]
        b = bass[bar % 4]
        for k in range(4):
            ev += [(t0 + k * beat, 1, b, 100), (t0 + (k + 0.9) * beat, 1, b, 0)]
        arp = [ch[0] + 12, ch[1] + 12, ch[2] + 12, ch[1] + 12] * 2
        for k, n in enumerate(arp):
            ev += [(t0 + k * beat / 2, 2, n, 70), (t0 + (k + 0.8) * beat / 2, 2, n, 0)]
        bar += 1
    return sorted(e for e in ev if e[0] < seconds)


def render_demo_clip(path: str | os.PathLike[str], sample_rate: int = 48000, seconds: float = 8.0,
                     bpm: float = 100.0, soundfont: str | None = None) -> Path:
    """Render the demo clip to a float WAV at ``sample_rate``; returns the path."""
    import fluidsynth

    sf2 = find_soundfont(soundfont)
    synth = fluidsynth.Synth(gain=0.5, samplerate=float(sample_rate))
    try:
        sfid = synth.sfload(sf2)
        if sfid < 0:
            raise RuntimeError(f"FluidSynth could not load SoundFont {sf2}")
        synth.program_select(0, sfid, 0, 0)  # acoustic grand piano
        synth.program_select(1, sfid, 0, 33)  # finger bass
        synth.program_select(2, sfid, 0, 11)  # vibraphone
        total = int(seconds * sample_rate)
        out = np.zeros((total, 2), dtype=np.float32)
        pos = 0
        for t, chan, note, vel in _events(seconds, bpm) + [(seconds, -1, 0, 0)]:
            upto = min(total, int(t * sample_rate))
            if upto > pos:
                block = np.asarray(synth.get_samples(upto - pos), dtype=np.int16).reshape(-1, 2)
                out[pos:upto] = block.astype(np.float32) / 32768.0
                pos = upto
            if chan < 0:
                break
            if vel:
                synth.noteon(chan, note, vel)
            else:
                synth.noteoff(chan, note)
        # short fade at the end so the clip does not stop on a click
        fade = min(total, int(0.05 * sample_rate))
        out[total - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)[:, None]
    finally:
        synth.delete()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), out, sample_rate, subtype="FLOAT")
    return path

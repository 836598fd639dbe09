"""The procedural backend: deterministic, in the asked tempo and key, real MIDI stems."""

from __future__ import annotations

import mido
import numpy as np
import pytest

from jackgen.generators.backends import ProceduralBackend, TakeContext
from jackgen.generators.compose import DRUM_CHANNEL, compose
from jackgen.generators.job import JobSpec, parse_key

KS_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KS_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


@pytest.fixture(scope="module")
def backend():
    b = ProceduralBackend()
    b.load()
    yield b
    b.close()


def render(backend, tmp_path, **job) -> np.ndarray:
    spec = JobSpec.from_dict({"prompt": "", **job})
    ctx = TakeContext(48000, tmp_path, [f"take{k}" for k in range(spec.variations)])
    chunks = [c for k, c in backend.generate(spec, ctx) if k == 0]
    return np.concatenate(chunks)


def estimate_tempo(y: np.ndarray, sr: int) -> float:
    """librosa's global tempo: the onset envelope's autocorrelation (beat tracking's DP is thrown by
    half-time snares and triplet hat rolls; the tempo of the whole take is what a producer sets)."""
    import librosa

    oenv = librosa.onset.onset_strength(y=y, sr=sr, hop_length=128)
    return float(librosa.feature.tempo(onset_envelope=oenv, sr=sr, hop_length=128)[0])


def estimate_key(y: np.ndarray, sr: int) -> tuple[int, bool]:
    """Krumhansl–Schmuckler on the mean CQT chroma of the harmonic part (HPSS takes the drums out, as key
    finders do: a tuned 808 kick is not the key): (tonic pitch class, minor)."""
    import librosa

    chroma = librosa.feature.chroma_cqt(y=librosa.effects.harmonic(y), sr=sr).mean(axis=1)
    best = max((np.corrcoef(np.roll(prof, t), chroma)[0, 1], t, minor)
               for prof, minor in ((KS_MAJOR, False), (KS_MINOR, True)) for t in range(12))
    return best[1], best[2]


def test_same_seed_same_samples_other_seed_other_music(backend, tmp_path):
    a = render(backend, tmp_path / "a", duration=4, style="house", seed=42)
    b = render(backend, tmp_path / "b", duration=4, style="house", seed=42)
    fresh = ProceduralBackend()
    try:
        c = render(fresh, tmp_path / "c", duration=4, style="house", seed=42)
    finally:
        fresh.close()
    d = render(backend, tmp_path / "d", duration=4, style="house", seed=43)
    assert a.shape == (4 * 48000, 2) and np.abs(a).max() > 0.1
    assert np.array_equal(a, b) and np.array_equal(a, c)  # warm or fresh worker: the same samples
    assert not np.array_equal(a, d)
    assert (tmp_path / "a" / "midi_stems" / "take0" / "full.mid").read_bytes() == \
        (tmp_path / "b" / "midi_stems" / "take0" / "full.mid").read_bytes()


def test_stems_are_general_midi_parts(tmp_path):
    comp = compose("rock", "E minor", 120, 5, 8.0)
    stems = comp.write_stems(tmp_path)
    drums = mido.MidiFile(stems["drums"])
    chans = {m.channel for t in drums.tracks for m in t if m.type == "note_on"}
    assert chans == {DRUM_CHANNEL}  # MIDI channel 10
    full = mido.MidiFile(stems["full"])
    assert abs(full.length - 8.0) < 0.01
    tempos = [m.tempo for t in full.tracks for m in t if m.type == "set_tempo"]
    assert tempos == [mido.bpm2tempo(120)]
    programs = {m.channel: m.program for t in full.tracks for m in t if m.type == "program_change"}
    assert programs == {0: 34, 1: 30, 2: 29}  # picked bass, distortion guitar, overdriven lead
    e_minor = {4, 6, 7, 9, 11, 0, 2}
    pitched = [m.note % 12 for t in full.tracks for m in t if m.type == "note_on" and m.channel != DRUM_CHANNEL]
    assert set(pitched) <= e_minor


# Two tempos and two keys per genre: the genre's own and one off it (a producer asks for both)
GENRE_CASES = [
    ("trap", "F# minor", 140), ("trap", "C minor", 132), ("drill", "C# minor", 144),
    ("drill", "G minor", 150),
    ("boombap", "D minor", 90), ("boombap", "Eb major", 86), ("lofi", "A minor", 84), ("lofi", "C major", 90),
    ("house", "F minor", 124), ("house", "G major", 120), ("techno", "A minor", 128),
    ("techno", "D minor", 132),
    ("dnb", "E minor", 174), ("dnb", "F# minor", 170), ("dubstep", "F minor", 140), ("dubstep", "D minor", 142),
    ("breakbeat", "E minor", 105), ("breakbeat", "A major", 112), ("ambient", "D major", 72),
    ("ambient", "F minor", 80), ("rock", "G major", 120), ("rock", "E minor", 132),
]


@pytest.mark.parametrize("style,key,bpm", GENRE_CASES)
def test_music_is_in_the_asked_tempo_and_key(backend, tmp_path, style, key, bpm):
    import librosa

    y = render(backend, tmp_path, duration=16, style=style, key=key, bpm=bpm, seed=2).mean(axis=1)
    y = librosa.resample(y, orig_sr=48000, target_sr=22050)
    tempo = estimate_tempo(y, 22050)
    assert any(abs(tempo * f - bpm) / bpm <= 0.02 for f in (1.0, 2.0, 0.5)), (tempo, bpm)
    k = parse_key(key)
    assert estimate_key(y, 22050) in ((k.tonic, k.minor), (k.relative.tonic, k.relative.minor))


def test_a_long_take_has_sections_with_parts_entering_and_leaving():
    from jackgen.generators.compose import plan_sections

    c = compose("trap", None, None, 7, 40 * 4 * 60 / 140)  # 40 bars
    names = [n for n, _, _ in c.sections]
    assert names[0] == "intro" and names[-1] == "outro" and {"verse", "hook"} <= set(names)
    spb = 4.0

    def playing(part: str, section: str) -> bool:
        return any(b0 * spb <= n.start < (b0 + bars) * spb for n in c.parts[part]
                   for name, b0, bars in c.sections if name == section)

    assert not playing("808", "intro") and playing("808", "verse")  # the 808 enters after the intro
    assert playing("melody", "hook") and not playing("melody", "outro")  # and the melody leaves before the end
    markers = [m.text for m in c.to_midi().tracks[0] if m.type == "marker"]
    assert markers == names
    d = compose("house", None, None, 7, 24 * 4 * 60 / 124, structure=(("intro", 4), ("drop", 8), ("break", 4),
                                                                      ("drop", 8)))
    assert [(n, b) for n, _, b in d.sections] == [("intro", 4), ("drop", 8), ("break", 4), ("drop", 8)]
    brk = next(b0 for n, b0, _ in d.sections if n == "break")
    assert not [n for n in d.parts["drums"] if brk * 4 <= n.start < (brk + 4) * 4]  # the break drops the drums
    assert plan_sections(12, "edm") == [("loop", 0, 12)]  # 16 bars or less: one loop


@pytest.mark.parametrize("genre", ["trap", "drill", "boombap", "lofi", "house", "techno", "dnb", "dubstep",
                                   "breakbeat", "ambient", "rock"])
def test_variations_differ_in_notes_not_only_in_velocity(genre):
    def shape(seed):
        c = compose(genre, None, None, seed, 30.0)
        return (c.progression, {p: frozenset((round(n.start, 4), n.pitch) for n in ns) for p, ns in c.parts.items()})

    for seed in (1, 2, 3):
        (prog_a, a), (prog_b, b) = shape(seed), shape(seed + 1)
        changed = [p for p in a if a[p] != b.get(p)]
        assert "melody" in changed or "chords" in changed or prog_a != prog_b, (genre, seed)
        assert "drums" in changed or prog_a != prog_b, (genre, seed)

"""Genres told apart by what can be measured in their audio, not by their names.

Every take is 16 s at the genre's own tempo (seeds 2 and 5), rendered by FluidSynth. The drum stem is split by GM
note into kick (35, 36), snare/clap/rim (37–40) and hats (42, 44, 46), each rendered on its own as a
multitrack drum recording would be, and onsets are found in the audio (librosa). The features:

- ``sub``: energy from 20 to 80 Hz over energy from 20 Hz up, of the whole mix;
- ``kick[s]``, ``snare[s]``, ``hat[s]``: the fraction of bars with an onset on 16th step ``s``
  (an onset within a third of a step of it);
- ``hats_per_beat``, ``kicks_per_beat``;
- ``roll``: the shortest gap between hat onsets, in 16ths (< 0.75: 32nds, triplets or faster);
- ``triplets``: the fraction of pairs of consecutive hat gaps that are both within 0.02 beat of 1/3 beat
  (three evenly spaced to the beat; a heavy 16th swing has gaps near 1/3 too, but never two running);
- ``swing16``, ``swing8``: how much later, in 16ths, the hats on the odd 16ths (on the off-beat 8ths)
  come than those on the beat;
- ``wobble``: how many dB, on average frame by frame, the bass stem's energy above 400 Hz moves when its
  CC 74 sweeps are taken out (0 for a bass that holds its filter).
"""

from __future__ import annotations

import mido
import numpy as np
import pytest

from jackgen.generators.compose import compose
from jackgen.generators.synth import FluidRenderer

SR = 48000
GROUPS = {"kick": {35, 36}, "snare": {37, 38, 39, 40}, "hat": {42, 44, 46}}


@pytest.fixture(scope="module")
def renderer():
    r = FluidRenderer(None, SR, gain=0.6)
    yield r
    r.close()


def _render(r, mid: mido.MidiFile, path) -> np.ndarray:
    mid.save(str(path))
    return np.concatenate(list(r.render(str(path)))).mean(axis=1)


def _only(mid: mido.MidiFile, notes: set[int]) -> mido.MidiFile:
    for tr in mid.tracks[1:]:
        for i, m in enumerate(tr):
            if m.type == "note_on" and m.note not in notes:
                tr[i] = m.copy(velocity=0)  # a note-on at velocity 0 is a note-off: the hit is gone
    return mid


def _onsets(y: np.ndarray) -> np.ndarray:
    """Onset times; 100 ms of silence goes first so a hit at 0 s has an onset too."""
    import librosa

    pad = int(0.1 * SR)
    y = np.concatenate([np.zeros(pad, dtype=y.dtype), y])
    return np.asarray(librosa.onset.onset_detect(y=y, sr=SR, hop_length=128, units="time")) - pad / SR


def _grid(times: np.ndarray, bpm: float, bars: int) -> np.ndarray:
    q = times / (15.0 / bpm)
    idx = np.round(q).astype(int)
    hist = np.zeros(16)
    for i in idx[(np.abs(q - idx) < 0.34) & (idx // 16 < bars)]:
        hist[i % 16] += 1
    return hist / bars


def features(r, genre: str, tmp_path, seed: int) -> dict:
    c = compose(genre, None, None, seed, 16.0)
    bars = int(c.beats // 4)
    f = {"bpm": c.bpm}
    mix = _render(r, c.to_midi(), tmp_path / "mix.mid")
    spec = np.abs(np.fft.rfft(mix)) ** 2
    freqs = np.fft.rfftfreq(len(mix), 1 / SR)
    f["sub"] = float(spec[(freqs >= 20) & (freqs < 80)].sum() / spec[freqs >= 20].sum())
    for group, notes in GROUPS.items():
        on = _onsets(_render(r, _only(c.to_midi(["drums"]), notes), tmp_path / f"{group}.mid"))
        f[group] = _grid(on, c.bpm, bars)
        f[f"{group}s_per_beat"] = len(on) / c.beats
        if group == "hat":
            gaps = np.diff(on) * c.bpm / 60.0
            f["roll"] = float(gaps.min() * 4) if len(gaps) else 99.0
            third = np.abs(gaps - 1 / 3) < 0.02  # evenly spaced three to the beat, two gaps running
            f["triplets"] = float(np.mean(third[1:] & third[:-1])) if len(gaps) > 1 else float("nan")
            pos = on / (15.0 / c.bpm)
            late = pos - np.round(pos)  # how late each hat is against the straight 16th grid
            step = np.round(pos).astype(int)
            near = np.abs(late) < 0.45

            def lateness(sel) -> float:
                # against the hats on the beat, so the onset finder's own delay cancels
                if not (near & sel).any():
                    return 0.0
                on_beat = near & (step % 4 == 0)
                if not on_beat.any():
                    return float("nan")
                return float(np.median(late[near & sel]) - np.median(late[on_beat]))

            f["swing16"] = lateness(step % 2 == 1)
            f["swing8"] = lateness(step % 4 == 2)
    bass = [n for n in c.parts if n in ("bass", "808")][0]
    renders = []
    for sweep in (True, False):  # the bass stem as written, and with its CC 74 sweeps taken out
        mid = c.to_midi([bass])
        if not sweep:
            for tr in mid.tracks[1:]:
                now = 0
                for i, m in enumerate(tr):
                    now += m.time
                    if now > 0 and m.type == "control_change" and m.control == 74:  # a sweep, not the setting
                        tr[i] = m.copy(value=64)
        renders.append(_render(r, mid, tmp_path / "bass.mid"))
    f["wobble"] = _brightness_change(*renders)
    return f


def _brightness_change(swept: np.ndarray, plain: np.ndarray) -> float:
    """How many dB the energy above 400 Hz differs, on average, frame by frame (10.7 ms) where the stem
    sounds, between the stem as written and the stem with its sweeps taken out."""
    import librosa

    def bands(y):
        S = np.abs(librosa.stft(y, n_fft=2048, hop_length=512)) ** 2
        return S[librosa.fft_frequencies(sr=SR, n_fft=2048) > 400].sum(axis=0), S.sum(axis=0)

    (hi_a, _), (hi_b, full) = bands(swept), bands(plain)
    n = min(len(hi_a), len(hi_b))
    live = full[:n] > full.max() * 1e-3
    return float(np.mean(np.abs(10 * np.log10((hi_a[:n][live] + 1e-12) / (hi_b[:n][live] + 1e-12)))))


ALL = ("trap", "drill", "boombap", "lofi", "house", "techno", "dnb", "dubstep", "breakbeat", "ambient", "rock")


@pytest.fixture(scope="module", params=[2, 5], ids=lambda s: f"seed{s}")
def measured(renderer, tmp_path_factory, request):
    """Every signature holds for two seeds: it is the genre's, not one pattern variant's."""
    return {g: features(renderer, g, tmp_path_factory.mktemp(g), request.param) for g in ALL}


def test_808_genres_carry_the_sub(measured):
    for g in ("trap", "drill", "dubstep"):
        for other in ("house", "boombap", "lofi", "rock", "breakbeat"):
            assert measured[g]["sub"] > 1.5 * measured[other]["sub"], (g, other, measured[g]["sub"],
                                                                       measured[other]["sub"])


def test_four_on_the_floor_only_where_it_belongs(measured):
    four = lambda g: min(measured[g]["kick"][s] for s in (0, 4, 8, 12))  # noqa: E731
    for g in ("house", "techno"):
        assert four(g) >= 0.9, (g, measured[g]["kick"])
    for g in ("trap", "drill", "boombap", "dnb", "dubstep", "breakbeat"):
        assert four(g) < 0.5, (g, measured[g]["kick"])


def test_half_time_snare_against_the_backbeat(measured):
    for g in ("trap", "drill", "dubstep"):
        sn = measured[g]["snare"]
        assert sn[8] >= 0.75 and sn[4] <= 0.25 and sn[12] <= 0.25, (g, sn)
    for g in ("boombap", "lofi", "dnb", "rock", "house", "breakbeat"):
        sn = measured[g]["snare"]
        assert sn[4] >= 0.75 and sn[12] >= 0.75 and sn[8] <= 0.25, (g, sn)


def test_hats_run_at_twice_the_kick_with_rolls_in_trap_and_triplets_in_drill(measured):
    for g in ("trap", "drill"):
        m = measured[g]
        assert m["hats_per_beat"] >= 2 * m["kicks_per_beat"], (g, m["hats_per_beat"], m["kicks_per_beat"])
    assert measured["trap"]["roll"] < 0.75
    assert measured["drill"]["triplets"] >= 0.2 and measured["drill"]["triplets"] > 3 * measured["boombap"]["triplets"]


def test_drum_and_bass_is_a_two_step_at_its_tempo(measured):
    m = measured["dnb"]
    assert 170 <= m["bpm"] <= 176
    assert m["kick"][0] >= 0.75 and m["kick"][10] >= 0.75 and m["kick"][4] <= 0.25 and m["kick"][12] <= 0.25


def test_boom_bap_swings_its_16ths_and_lofi_its_8ths(measured):
    assert measured["boombap"]["swing16"] > 0.15 and abs(measured["techno"]["swing16"]) < 0.1
    assert measured["lofi"]["swing8"] > 0.2 and abs(measured["techno"]["swing8"]) < 0.1


def test_dubstep_bass_wobbles(measured):
    assert measured["dubstep"]["wobble"] > 4, measured["dubstep"]["wobble"]  # dB on average; far more when shut
    assert measured["dnb"]["wobble"] < 1  # nothing to take out: a reese holds its filter


def test_an_808_slide_is_a_pitch_bend_heard_as_a_glide(renderer, tmp_path):
    import librosa

    c = compose("trap", "F# minor", 140, 3, 16.0)
    notes = c.parts["808"]
    by_start = {round(n.start, 6): i for i, n in enumerate(notes)}
    slides = [(t, v) for t, kind, v in c.ctrl["808"] if kind == "bend" and v != 0 and round(t, 6) in by_start]
    assert slides, "a trap 808 slides"
    mid = c.to_midi(["808"])
    assert any(m.type == "pitchwheel" and m.pitch != 0 for m in mid.tracks[1])  # in the 808 stem itself
    y = librosa.resample(_render(renderer, mid, tmp_path / "808.mid"), orig_sr=SR, target_sr=8000)
    f0, _, _ = librosa.pyin(y, fmin=30, fmax=200, sr=8000, frame_length=1024, hop_length=64)
    t = librosa.times_like(f0, sr=8000, hop_length=64)
    spb = 60.0 / c.bpm
    for beat, _ in slides[:2]:
        i = by_start[round(beat, 6)]
        f_from, f_to = (librosa.midi_to_hz(notes[k].pitch) for k in (i - 1, i))
        lo, hi = sorted((f_from, f_to))
        before = f0[(t > beat * spb - 0.12) & (t < beat * spb - 0.02)]
        glide = f0[(t >= beat * spb) & (t <= beat * spb + 0.5 * spb)]  # the bend ramps back over half a beat
        after = f0[(t > (beat + 0.5) * spb + 0.03) & (t < (beat + 0.5) * spb + 0.12)]
        assert np.nanmedian(np.abs(before / f_from - 1)) < 0.03 and np.nanmedian(np.abs(after / f_to - 1)) < 0.03
        between = glide[(glide > lo * 1.08) & (glide < hi / 1.08)]
        assert len(between) >= 8, glide  # frames on the way, not a jump
        steps = np.diff(glide[~np.isnan(glide)])
        assert np.mean(np.sign(steps) == np.sign(f_to - f_from)) > 0.7  # and it goes one way

"""Warp to tempo: time-stretch a clip to a tempo, keeping its pitch (Rubber Band, via pedalboard's
``time_stretch``), and estimate a clip's tempo by beat tracking. Arrays in, arrays out."""

from __future__ import annotations

import numpy as np


def stretch_to_tempo(audio: np.ndarray, rate: int, from_bpm: float, to_bpm: float) -> np.ndarray:
    """(n, channels) float32 at ``from_bpm`` -> the same music at ``to_bpm``, same pitch."""
    import pedalboard

    if not (from_bpm > 0 and to_bpm > 0):
        raise ValueError("tempos must be positive")
    y = pedalboard.time_stretch(np.ascontiguousarray(audio.T, dtype=np.float32), float(rate),
                                stretch_factor=float(to_bpm) / float(from_bpm), high_quality=True)
    return np.ascontiguousarray(y.T, dtype=np.float32)


def estimate_tempo(audio: np.ndarray, rate: int) -> float:
    """Beat tracking (librosa) on the mono mix; the median beat interval, for precision."""
    import librosa

    y = np.asarray(audio, dtype=np.float32).mean(axis=1)
    if rate != 22050:
        y = librosa.resample(y, orig_sr=rate, target_sr=22050)
    _, beats = librosa.beat.beat_track(y=y, sr=22050, hop_length=128, units="time")
    if len(beats) < 4:
        raise ValueError("no steady beat found to estimate a tempo from")
    return float(60.0 / np.median(np.diff(beats)))

"""Warp to tempo: time-stretch a clip to the session tempo, keeping its pitch (Rubber Band, via
pedalboard's ``time_stretch``). The clip's own tempo comes from its take metadata or an estimate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def stretch_to_tempo(audio: np.ndarray, rate: int, from_bpm: float, to_bpm: float) -> np.ndarray:
    """(n, channels) float32 at ``from_bpm`` -> the same music at ``to_bpm``, same pitch."""
    import pedalboard

    if not (from_bpm > 0 and to_bpm > 0):
        raise ValueError("tempos must be positive")
    y = pedalboard.time_stretch(np.ascontiguousarray(audio.T, dtype=np.float32), float(rate),
                                stretch_factor=float(to_bpm) / float(from_bpm), high_quality=True)
    return np.ascontiguousarray(y.T, dtype=np.float32)


def tempo_from_metadata(path: str | Path) -> float | None:
    """A take's tempo from the ``<take>.json`` beside it (what the generator used), if any."""
    meta = Path(path).with_suffix(".json")
    if not meta.is_file():
        return None
    try:
        d = json.loads(meta.read_text())
    except ValueError:
        return None
    for v in (d.get("bpm"), (d.get("params") or {}).get("bpm")):
        if isinstance(v, (int, float)) and 20 <= v <= 400:
            return float(v)
    return None


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

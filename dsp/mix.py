"""Gain and pan laws, fades and meters: pure numpy, no state beyond the arrays passed in.

Functions that take ``out=`` write into it and allocate nothing but numpy's
small scalar temporaries; the engine calls those from its process thread.
"""

from __future__ import annotations

import math

import numpy as np

MIN_GAIN_DB = -120.0  # at or below this a track is silent (gain exactly 0)
MAX_GAIN_DB = 24.0


def db_to_lin(gain_db: float) -> float:
    """dB to linear amplitude; ``MIN_GAIN_DB`` and below map to exactly 0."""
    if gain_db <= MIN_GAIN_DB:
        return 0.0
    return 10.0 ** (gain_db / 20.0)


def lin_to_db(gain: float) -> float:
    return MIN_GAIN_DB if gain <= 10.0 ** (MIN_GAIN_DB / 20.0) else 20.0 * math.log10(gain)


def cc_to_gain_db(value: int) -> float:
    """MIDI CC 0-127 to fader dB: 100 is 0 dB, 127 about +4 dB, 0 is silence (MIN_GAIN_DB)."""
    if value <= 0:
        return MIN_GAIN_DB
    return max(MIN_GAIN_DB, 40.0 * math.log10(value / 100.0))


def cc_to_pan(value: int) -> float:
    """MIDI CC 0-127 to balance: 0 hard left, 64 centre, 127 hard right."""
    return max(-1.0, (value - 64) / 63.0)


def balance_pan(pan: float) -> tuple[float, float]:
    """Stereo balance with a constant-power taper: centre is unity on both channels.

    ``pan`` in -1 (left) .. 1 (right). Turning right attenuates only the left
    channel, by ``cos(pan * pi/2)``; at ±1 the far channel is silent.
    """
    pan = min(1.0, max(-1.0, pan))
    if pan > 0:
        return math.cos(pan * math.pi / 2), 1.0
    if pan < 0:
        return 1.0, math.cos(-pan * math.pi / 2)
    return 1.0, 1.0


def track_gains(
    gain_db: np.ndarray, pan: np.ndarray, mute: np.ndarray, solo: np.ndarray, out: np.ndarray
) -> np.ndarray:
    """Per-track (L, R) linear gains from fader, balance, mute and solo (solo-in-place).

    ``out`` has shape (tracks, 2). Any soloed track silences every non-soloed one.
    """
    any_solo = bool(solo.any())
    for t in range(out.shape[0]):
        audible = not mute[t] and (not any_solo or solo[t])
        if not audible:
            out[t] = 0.0
            continue
        g = db_to_lin(float(gain_db[t]))
        gl, gr = balance_pan(float(pan[t]))
        out[t, 0] = g * gl
        out[t, 1] = g * gr
    return out


def fade_curve(length: int, fade_in: bool) -> np.ndarray:
    """Raised-cosine fade of ``length`` samples (float32), 0→1 for a fade in."""
    if length <= 0:
        return np.zeros(0, dtype=np.float32)
    x = (np.arange(length, dtype=np.float64) + 1.0) / length
    up = 0.5 - 0.5 * np.cos(np.pi * x)
    return (up if fade_in else 1.0 - up).astype(np.float32)


def peak_and_sumsq(
    block: np.ndarray, scratch: np.ndarray, tmp: np.ndarray, peak_out: np.ndarray, sumsq_out: np.ndarray
) -> None:
    """Accumulate per-channel peak (running max) and sum of squares of ``block``.

    ``block`` is (..., frames) with frames last and contiguous (reducing along the
    last axis is several times faster than along a middle one); ``scratch`` has
    its shape, ``tmp``/``peak_out``/``sumsq_out`` the shape without the frames
    axis (``tmp`` and ``peak_out`` float32, ``sumsq_out`` float64).
    """
    np.abs(block, out=scratch)
    np.max(scratch, axis=-1, out=tmp)
    np.maximum(peak_out, tmp, out=peak_out)
    np.einsum("...i,...i->...", block, block, out=tmp)
    sumsq_out += tmp


def true_peak_dbfs(audio: np.ndarray, oversample: int = 4) -> float:
    """Inter-sample peak of (n, channels) audio in dBTP, by ``oversample``× polyphase
    interpolation (ITU-R BS.1770's method)."""
    from scipy.signal import resample_poly

    if audio.size == 0:
        return float("-inf")
    up = resample_poly(np.asarray(audio, dtype=np.float64), oversample, 1, axis=0)
    peak = max(float(np.abs(up).max()), float(np.abs(audio).max()))
    return 20.0 * np.log10(max(peak, 1e-12))


def integrated_lufs(audio: np.ndarray, rate: int) -> float | None:
    """Integrated loudness (ITU-R BS.1770-4, via pyloudnorm); None for audio under 0.4 s."""
    import pyloudnorm

    if audio.shape[0] < int(0.4 * rate):
        return None
    lufs = pyloudnorm.Meter(rate).integrated_loudness(np.asarray(audio, dtype=np.float64))
    return None if not np.isfinite(lufs) else float(lufs)

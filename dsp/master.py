"""Mastering section of the master bus: EQ -> makeup gain -> true-peak limiter (C kernel).

Why a native stage and not pedalboard plugins: it runs in the engine's process
callback on every block, so it must allocate nothing and cost a few µs, and the
same code must run in ``jackgen bounce`` (``EngineCore.process`` in both). The
kernel is ``jg_master_block`` in ``_kernels_build.py`` (its comment has the
algorithm); this module designs its filters and holds its settings.

- **EQ**: up to 4 bands (``lowshelf``, ``peak``, ``highshelf``, ``highpass``,
  ``lowpass``; RBJ biquads). Changes glide over ~20 ms. Flat bands cost nothing and
  change nothing.
- **Limiter**: true peak (4x oversampled detection, as ITU-R BS.1770 measures it),
  ceiling −0.3 dBTP by default, look-ahead 1.5 ms, release 80 ms. Latency is
  ``lookahead + 10`` frames (82 at 48 kHz), reported on the master ports; below the
  ceiling the master is the mix delayed by exactly that, sample for sample.
- **Makeup gain** in dB, also what a loudness target sets (``jackgen bounce --lufs``).
"""

from __future__ import annotations

import math

import numpy as np

from jackgen.dsp._kernels import ffi, lib


class BandError(ValueError):
    """An EQ band setting that cannot be used; the message names the field and its range."""


EQ_TYPES = {"off": 0, "lowshelf": 1, "peak": 2, "highshelf": 3, "highpass": 4, "lowpass": 5}
EQ_NAMES = {v: k for k, v in EQ_TYPES.items()}
EQ_BANDS = 4
TAPS = 20  # per phase: scipy resample_poly's 4x filter (81 taps, Kaiser 5), what meters and tests use
TP_DELAY = TAPS // 2  # frames the 4x interpolator looks ahead
MAX_LOOKAHEAD = 512
SMOOTH_S = 0.02
# The kernel aims this far under the ceiling: the gain moves while the interpolator
# looks across it, which the detector (run before the gain) cannot see.
DETECT_MARGIN_DB = 0.05


def interpolator(taps: int = TAPS) -> np.ndarray:
    """Phases 1..3 of a 4x interpolating low-pass, (3, taps): row p gives x at m + (p+1)/4 from x[m-D+1 .. m+D].

    The prototype is scipy's ``firwin(4 * taps + 1, 1/4, window=("kaiser", 5.0))`` (what
    ``resample_poly`` uses), written out with numpy: importing scipy.signal costs the
    engine seconds at start."""
    n = 4 * taps + 1
    m = np.arange(n) - (n - 1) / 2.0
    h = 0.25 * np.sinc(0.25 * m) * np.kaiser(n, 5.0)
    h = h / h.sum() * 4.0
    out = np.zeros((3, taps), dtype=np.float32)
    for p in range(1, 4):
        for k in range(taps):
            out[p - 1, k] = h[4 * (taps - 1 - k) + p]
    return out


def lookahead_frames(rate: int, lookahead_ms: float) -> int:
    return max(1, min(MAX_LOOKAHEAD, int(round(lookahead_ms * 1e-3 * rate))))


def master_latency(rate: int, lookahead_ms: float) -> int:
    """Frames from the mix to the master output (what the master ports report)."""
    return lookahead_frames(rate, lookahead_ms) + TP_DELAY


def check_band(band: dict) -> dict:
    """Validate one EQ band ({"type", "freq", "gain_db", "q"}); returns it normalised."""
    if not isinstance(band, dict):
        raise BandError(f"an EQ band is an object with type/freq/gain_db/q, got {band!r}")
    kind = band.get("type", "peak")
    if kind not in EQ_TYPES:
        raise BandError(f"EQ band type must be one of {', '.join(EQ_TYPES)}, got {kind!r}")
    out = {"type": kind}
    for key, default, lo, hi in (("freq", 1000.0, 20.0, 20000.0), ("gain_db", 0.0, -24.0, 24.0),
                                 ("q", 0.707, 0.1, 10.0)):
        v = band.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise BandError(f"EQ {key} must be a number, got {v!r}")
        if not lo <= v <= hi:
            raise BandError(f"EQ {key} must be between {lo:g} and {hi:g}, got {v:g}")
        out[key] = float(v)
    return out


class MasterSection:
    """Owns the kernel state. Not process thread: ``__init__``, ``configure``, ``reset``.
    Process thread: ``set_gain``, ``set_band``, ``set_ceiling`` (field stores only; the engine calls the kernel)."""

    def __init__(self, rate: int, ceiling_db: float = -0.3, lookahead_ms: float = 1.5, release_ms: float = 80.0,
                 gain_db: float = 0.0, eq: list[dict] | None = None) -> None:
        self.rate = rate
        self.s = ffi.new("jg_master_t *")
        s = self.s
        s.rate = float(rate)
        s.lookahead = lookahead_frames(rate, lookahead_ms)
        s.release_coef = 1.0 - math.exp(-1.0 / (max(release_ms, 1.0) * 1e-3 * rate))
        s.gain_coef = 1.0 - math.exp(-1.0 / (SMOOTH_S / 4 * rate))
        fir = interpolator()
        for p in range(3):
            for k in range(TAPS):
                s.fir[p][k] = float(fir[p, k])
        self.ceiling_db = ceiling_db
        self.gain_db = gain_db
        self.bands: list[tuple] = [(0, 1000.0, 0.0, 0.707)] * EQ_BANDS
        self.set_ceiling(ceiling_db)
        self.set_gain(gain_db)
        for b, band in enumerate((eq or [])[:EQ_BANDS]):
            band = check_band(band)
            self.set_band(b, EQ_TYPES[band["type"]], band["freq"], band["gain_db"], band["q"])
        self.reset()

    @property
    def latency(self) -> int:
        """Frames from the mix to the master output."""
        return int(self.s.lookahead) + TP_DELAY

    def set_block_size(self, n: int) -> None:
        """EQ glides per block: ~20 ms whatever the block size."""
        self.s.eq_coef = 1.0 - math.exp(-n / (SMOOTH_S / 4 * self.rate))

    def reset(self) -> None:
        """Settings jump to their targets, history is cleared (start of a bounce, a new engine)."""
        lib.jg_master_reset(self.s)

    # -------------------------------------------------- process thread (field stores)
    def set_ceiling(self, db: float) -> None:
        self.ceiling_db = float(db)
        self.s.ceiling = 10.0 ** ((db - DETECT_MARGIN_DB) / 20.0)

    def set_gain(self, db: float) -> None:
        self.gain_db = float(db)
        self.s.gain_target = 10.0 ** (db / 20.0)

    def set_band(self, b: int, kind: int, freq: float, gain_db: float, q: float) -> None:
        """Band ``b`` glides to a new shape (``kind``: an EQ_TYPES code; 0 = off)."""
        if not 0 <= b < EQ_BANDS or kind not in EQ_NAMES:
            raise ValueError("EQ band or type out of range")
        if not (math.isfinite(freq) and math.isfinite(gain_db) and math.isfinite(q)):
            raise ValueError("EQ value not finite")
        freq = min(max(freq, 10.0), 0.45 * self.rate)
        gain_db = min(max(gain_db, -24.0), 24.0)
        q = min(max(q, 0.1), 10.0)
        s = self.s
        if kind == 0:
            s.eq_target[b][1] = 0.0  # glides to flat, then the band switches off
            if s.eq_type[b] >= 4:  # a filter has no flat setting: off at once
                s.eq_type[b] = 0
        else:
            if s.eq_type[b] != kind:  # a new shape starts flat where it is and glides in
                s.eq_type[b] = kind
                s.eq_cur[b][0] = freq
                s.eq_cur[b][1] = 0.0 if kind < 4 else gain_db
                s.eq_cur[b][2] = q
            s.eq_target[b][0] = freq
            s.eq_target[b][1] = gain_db
            s.eq_target[b][2] = q
        self.bands[b] = (kind, freq, gain_db, q)

    def settings(self) -> dict:
        eq = [{"type": EQ_NAMES[k], "freq": f, "gain_db": g, "q": q} for k, f, g, q in self.bands]
        return {"ceiling_dbtp": self.ceiling_db, "gain_db": self.gain_db, "eq": eq,
                "lookahead_frames": int(self.s.lookahead), "latency_frames": self.latency}


def process_offline(section: MasterSection, audio: np.ndarray, block: int = 256) -> np.ndarray:
    """Run (n, 2) audio through ``section`` in blocks and return it with the latency removed
    (tests and tools; the engine calls the kernel itself)."""
    lat = section.latency
    x = np.concatenate([np.asarray(audio, dtype=np.float32), np.zeros((lat, 2), np.float32)])
    out = np.empty_like(x)
    buf = np.zeros((2, block), dtype=np.float32)
    section.set_block_size(block)
    ptr = ffi.cast("float *", ffi.from_buffer(buf))
    for i in range(0, x.shape[0], block):
        k = min(block, x.shape[0] - i)
        if k != block:
            buf = np.zeros((2, k), dtype=np.float32)
            ptr = ffi.cast("float *", ffi.from_buffer(buf))
        buf[:] = x[i : i + k].T
        lib.jg_master_block(section.s, ptr, k)
        out[i : i + k] = buf.T
    return out[lat:]

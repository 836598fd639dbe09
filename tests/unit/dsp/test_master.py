"""The master bus's mastering section (C kernel): true-peak limiter, EQ, makeup gain."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.signal import lfilter

from jackgen.dsp.master import EQ_TYPES, BandError, MasterSection, check_band, process_offline
from jackgen.dsp.mix import true_peak_dbfs

RATE = 48000


def signals():
    rng = np.random.default_rng(7)
    n = 2 * RATE
    t = np.arange(n) / RATE
    stereo = lambda x: np.stack([x, x], 1).astype(np.float32)  # noqa: E731
    impulses = np.zeros((n, 2), np.float32)
    impulses[::4801] = [1.5, -1.2]
    impulses[1::4801] = [-1.5, 1.2]
    return {
        "hot noise": (rng.standard_normal((n, 2)) * 0.8).astype(np.float32),
        "clipped noise": np.clip(rng.standard_normal((n, 2)) * 3, -1, 1).astype(np.float32),  # big inter-sample overs
        "sine near fs/4": stereo(1.0 * np.sin(2 * np.pi * 12000 * t + np.pi / 4)),  # sample peaks 0.707, true 1.0
        "sine 11999 Hz": stereo(1.5 * np.sin(2 * np.pi * 11999 * t + 0.3)),
        "square": stereo(1.2 * np.sign(np.sin(2 * np.pi * 997 * t))),
        "alternating impulses": impulses,
        "bursts": (rng.standard_normal((n, 2)) * np.repeat(rng.uniform(0.01, 2.0, n // 2400), 2400)[:, None]).astype(
            np.float32),
    }


@pytest.mark.parametrize("name", list(signals()))
@pytest.mark.parametrize("ceiling,block", [(-0.3, 256), (-1.0, 64), (-0.3, 333)])
def test_true_peak_never_passes_the_ceiling(name, ceiling, block):
    x = signals()[name]
    y = process_offline(MasterSection(RATE, ceiling_db=ceiling), x, block)
    assert true_peak_dbfs(x) > ceiling  # every signal here needs limiting
    assert true_peak_dbfs(y) <= ceiling, f"{name}: {true_peak_dbfs(y):.3f} dBTP over the {ceiling} ceiling"
    assert true_peak_dbfs(y) > ceiling - 0.6, "limited far below the ceiling: gain thrown away"


def test_below_the_ceiling_it_is_a_pure_delay_and_it_recovers_exactly_after_limiting():
    m = MasterSection(RATE)
    assert m.latency == round(0.0015 * RATE) + 10
    rng = np.random.default_rng(1)
    quiet = (rng.uniform(-0.5, 0.5, (RATE, 2))).astype(np.float32)
    assert np.array_equal(process_offline(m, quiet, 256), quiet)
    loud = (rng.uniform(-2.0, 2.0, (RATE // 2, 2))).astype(np.float32)
    x = np.concatenate([quiet, loud, quiet, quiet])
    y = process_offline(MasterSection(RATE), x, 256)
    n, k = quiet.shape[0], loud.shape[0]
    lat = m.latency
    assert np.array_equal(y[: n - lat], x[: n - lat]), "untouched before the look-ahead sees the loud part"
    assert not np.array_equal(y[n - lat : n], x[n - lat : n]), "the gain comes down before the peak arrives"
    release_end = n + k + int(0.08 * RATE * 20)  # 20 release time constants
    assert np.array_equal(y[release_end:], x[release_end:]), "back to unity, bit for bit"


def _rbj(kind: str, f: float, gain_db: float, q: float, rate: int = RATE):
    """RBJ Audio EQ Cookbook biquads, written out independently of the kernel."""
    A = 10 ** (gain_db / 40)
    w = 2 * math.pi * f / rate
    cw, sw = math.cos(w), math.sin(w)
    al = sw / (2 * q)
    if kind == "peak":
        b, a = [1 + al * A, -2 * cw, 1 - al * A], [1 + al / A, -2 * cw, 1 - al / A]
    elif kind == "lowshelf":
        s = 2 * math.sqrt(A) * al
        b = [A * ((A + 1) - (A - 1) * cw + s), 2 * A * ((A - 1) - (A + 1) * cw), A * ((A + 1) - (A - 1) * cw - s)]
        a = [(A + 1) + (A - 1) * cw + s, -2 * ((A - 1) + (A + 1) * cw), (A + 1) + (A - 1) * cw - s]
    elif kind == "highshelf":
        s = 2 * math.sqrt(A) * al
        b = [A * ((A + 1) + (A - 1) * cw + s), -2 * A * ((A - 1) + (A + 1) * cw), A * ((A + 1) + (A - 1) * cw - s)]
        a = [(A + 1) - (A - 1) * cw + s, 2 * ((A - 1) - (A + 1) * cw), (A + 1) - (A - 1) * cw - s]
    elif kind == "highpass":
        b, a = [(1 + cw) / 2, -(1 + cw), (1 + cw) / 2], [1 + al, -2 * cw, 1 - al]
    else:
        b, a = [(1 - cw) / 2, 1 - cw, (1 - cw) / 2], [1 + al, -2 * cw, 1 - al]
    return np.array(b) / a[0], np.array(a) / a[0]


def test_eq_matches_the_cookbook_filters_and_makeup_gain_applies():
    bands = [{"type": "lowshelf", "freq": 120.0, "gain_db": 4.0, "q": 0.7},
             {"type": "peak", "freq": 1800.0, "gain_db": -5.0, "q": 2.0},
             {"type": "highshelf", "freq": 9000.0, "gain_db": 2.5, "q": 0.8},
             {"type": "highpass", "freq": 30.0, "gain_db": 0.0, "q": 0.707}]
    x = (np.random.default_rng(4).uniform(-0.1, 0.1, (RATE, 2))).astype(np.float32)
    y = process_offline(MasterSection(RATE, eq=bands, gain_db=-3.0), x, 256)
    ref = x.astype(np.float64)
    for band in bands:
        b, a = _rbj(band["type"], band["freq"], band["gain_db"], band["q"])
        ref = lfilter(b, a, ref, axis=0)
    ref *= 10 ** (-3 / 20)
    np.testing.assert_allclose(y, ref, atol=2e-6)


def test_eq_and_gain_changes_glide_without_a_click():
    m = MasterSection(RATE)
    t = np.arange(RATE) / RATE
    x = np.stack([0.2 * np.sin(2 * np.pi * 200 * t)] * 2, 1).astype(np.float32)
    block = 256
    out = []
    buf_in = np.concatenate([x, np.zeros((m.latency, 2), np.float32)])
    from jackgen.dsp._kernels import ffi, lib

    m.set_block_size(block)
    for i in range(0, buf_in.shape[0] - block + 1, block):
        if i == 24 * block:  # mid-stream: +9 dB peak right on the tone, and +6 dB makeup
            m.set_band(1, EQ_TYPES["peak"], 200.0, 9.0, 1.0)
            m.set_gain(6.0)
        planar = buf_in[i : i + block].T.copy()
        lib.jg_master_block(m.s, ffi.cast("float *", ffi.from_buffer(planar)), block)
        out.append(planar.T)
    y = np.concatenate(out)[:, 0]
    steady_step = 2 * np.pi * 200 / RATE  # largest sample-to-sample step of a unit sine at 200 Hz
    level = np.abs(y[-4000:]).max()
    assert level == pytest.approx(min(0.2 * 10 ** (15 / 20), 10 ** (-0.35 / 20)), rel=0.05)
    assert np.abs(np.diff(y)).max() <= 1.1 * level * steady_step, "a jump bigger than the tone's own slope"


def test_bad_bands_are_refused_with_the_field_named():
    for band, words in (({"type": "tilt"}, "type must be one of"), ({"type": "peak", "freq": 5}, "freq must be"),
                        ({"type": "peak", "gain_db": "loud"}, "gain_db must be a number"),
                        ({"type": "peak", "q": float("nan")}, "q must be a number"), ("peak", "an EQ band")):
        with pytest.raises(BandError, match=words):
            check_band(band)
    with pytest.raises(ValueError):
        MasterSection(RATE).set_band(4, 2, 1000.0, 1.0, 1.0)


def test_makeup_gain_glides_to_exactly_its_target():
    m = MasterSection(RATE, gain_db=-6.0)
    x = np.full((RATE // 2, 2), 0.25, np.float32)
    m.set_gain(0.0)
    y = process_offline(m, x, 256)
    assert y[0, 0] < 0.13 and np.array_equal(y[-1000:], x[-1000:]), "0 dB again means bit-transparent again"


def test_the_interpolator_is_resample_polys_filter():
    from scipy.signal import firwin

    h = firwin(81, 0.25, window=("kaiser", 5.0)) * 4.0
    from jackgen.dsp.master import interpolator

    fir = interpolator()
    for p in range(1, 4):
        np.testing.assert_allclose(fir[p - 1], h[p::4][:20][::-1], rtol=1e-5, atol=1e-7)

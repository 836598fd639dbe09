from __future__ import annotations

import math

import numpy as np
import pytest

from jackgen.dsp._kernels import ffi, lib
from jackgen.dsp.mix import balance_pan, db_to_lin, fade_curve, lin_to_db, peak_and_sumsq, track_gains

BLOCK_SIZES = [1, 33, 256, 4096]


def p(a, t="float *"):
    return ffi.cast(t, ffi.from_buffer(a))


def test_gain_law():
    assert db_to_lin(0.0) == 1.0
    assert db_to_lin(-120.0) == 0.0 and db_to_lin(-500.0) == 0.0
    assert db_to_lin(-6.0) == pytest.approx(0.501187, rel=1e-5)
    assert lin_to_db(db_to_lin(-12.5)) == pytest.approx(-12.5)


def test_balance_pan_is_unity_at_centre_and_constant_power_on_the_far_side():
    assert balance_pan(0.0) == (1.0, 1.0)
    assert balance_pan(1.0)[0] == pytest.approx(0.0, abs=1e-12) and balance_pan(1.0)[1] == 1.0
    assert balance_pan(-1.0)[0] == 1.0 and balance_pan(-1.0)[1] == pytest.approx(0.0, abs=1e-12)
    assert balance_pan(0.5)[0] == pytest.approx(math.sqrt(0.5))
    assert balance_pan(7.0) == balance_pan(1.0)  # clamped


def test_mute_and_solo_in_place():
    T = 4
    gain_db, pan = np.zeros(T), np.zeros(T)
    mute, solo = np.zeros(T, bool), np.zeros(T, bool)
    out = np.zeros((T, 2), np.float32)
    mute[1] = True
    track_gains(gain_db, pan, mute, solo, out)
    assert out[:, 0].tolist() == [1, 0, 1, 1]
    solo[2] = True
    track_gains(gain_db, pan, mute, solo, out)
    assert out[:, 0].tolist() == [0, 0, 1, 0]
    solo[1] = True  # soloed but muted: mute wins
    track_gains(gain_db, pan, mute, solo, out)
    assert out[:, 0].tolist() == [0, 0, 1, 0]


def test_fades_are_monotonic_and_complementary():
    fin, fout = fade_curve(64, True), fade_curve(64, False)
    assert fin[-1] == 1.0 and fout[-1] == 0.0
    assert (np.diff(fin) > 0).all() and (np.diff(fout) < 0).all()
    np.testing.assert_allclose(fin + fout, 1.0, atol=1e-6)


def _reference_mix(tb, g0, g1):
    """numpy reference for jg_mix_block: per-sample linear gain ramp, then sum."""
    T, n, _ = tb.shape
    ramp = (np.arange(1, n + 1, dtype=np.float32) / np.float32(n)).astype(np.float32)
    g = g0[:, None, :] + (g1 - g0)[:, None, :] * ramp[None, :, None]
    y = (tb * np.where((g0 == g1)[:, None, :], g0[:, None, :], g)).astype(np.float32)
    return y.transpose(0, 2, 1), y.sum(axis=0).T


@pytest.mark.parametrize("n", BLOCK_SIZES)
def test_mix_kernel_matches_numpy_reference(n):
    rng = np.random.default_rng(n)
    T = 16
    tb = rng.uniform(-0.5, 0.5, (T, n, 2)).astype(np.float32)
    g0 = rng.uniform(0, 1, (T, 2)).astype(np.float32)
    g1 = g0.copy()
    g1[::3] = rng.uniform(0, 1, (len(g1[::3]), 2))  # some tracks ramp, some do not
    out = np.zeros((T + 1, 2, n), np.float32)
    active = np.ones(T, np.uint8)
    peak = np.zeros((T, 2), np.float32)
    sumsq = np.zeros((T, 2), np.float64)
    lib.jg_mix_block(p(tb), p(active, "uint8_t *"), p(g0), p(g1), T, n, p(out), p(peak), p(sumsq, "double *"))
    ref_tracks, ref_master = _reference_mix(tb, g0, g1)
    np.testing.assert_allclose(out[:T], ref_tracks, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out[T], ref_master, rtol=1e-5, atol=1e-6)
    # the meters agree with the numpy reference meter
    rpeak = np.zeros((T, 2), np.float32)
    rsum = np.zeros((T, 2), np.float64)
    peak_and_sumsq(np.ascontiguousarray(ref_tracks), np.empty_like(ref_tracks), np.zeros((T, 2), np.float32), rpeak, rsum)
    np.testing.assert_allclose(peak, rpeak, rtol=1e-6)
    np.testing.assert_allclose(sumsq, rsum, rtol=1e-4)


def test_mix_at_unity_is_bit_exact():
    rng = np.random.default_rng(0)
    T, n = 16, 128
    tb = np.zeros((T, n, 2), np.float32)
    tb[2] = rng.uniform(-1, 1, (n, 2))
    g = np.ones((T, 2), np.float32)
    out = np.zeros((T + 1, 2, n), np.float32)
    lib.jg_mix_block(p(tb), p(np.ones(T, np.uint8), "uint8_t *"), p(g), p(g), T, n, p(out),
                     p(np.zeros((T, 2), np.float32)), p(np.zeros((T, 2)), "double *"))
    assert np.array_equal(out[2], tb[2].T) and np.array_equal(out[T], tb[2].T)


def test_meter_rows():
    x = np.array([[0.5, -1.0, 0.25], [0.0, 0.0, 0.0]], np.float32)
    peak = np.zeros(2, np.float32)
    ss = np.zeros(2)
    lib.jg_meter_rows(p(x), 2, 3, p(peak), p(ss, "double *"))
    assert peak.tolist() == [1.0, 0.0] and ss[0] == pytest.approx(1.3125)


def test_true_peak_sees_between_the_samples_and_lufs_is_calibrated():
    from jackgen.dsp.mix import integrated_lufs, true_peak_dbfs

    rate = 48000
    n = np.arange(rate)
    # a sine at fs/4 sampled 45 degrees off its peaks: every sample is 0.707, the wave reaches 1.0
    x = np.sin(2 * np.pi * n / 4 + np.pi / 4)[:, None].repeat(2, axis=1).astype(np.float32)
    assert 20 * np.log10(np.abs(x).max()) == pytest.approx(-3.01, abs=0.01)
    assert true_peak_dbfs(x) == pytest.approx(0.0, abs=0.2)
    # BS.1770's calibration: a 997 Hz sine of peak -18 dBFS on both channels of a stereo pair is -18 LUFS
    # (one channel alone would be -21: the channels' powers add)
    t = n / rate
    tone = (10 ** (-18 / 20) * np.sin(2 * np.pi * 997 * t))[:, None].repeat(2, axis=1)
    assert integrated_lufs(np.tile(tone, (3, 1)), rate) == pytest.approx(-18.0, abs=0.1)
    assert integrated_lufs(tone[:1000], rate) is None

"""Control's engine clock: a JACK time maps to a frame from the engine's reference cycle."""

from __future__ import annotations

from jackgen.daemon.control.clock import EngineClock


def test_a_settled_period_estimate_is_used_and_an_unsettled_one_is_not():
    # 512 frames at 48 kHz: a period of 10 666.67 µs
    settled = EngineClock(frame=1000, usecs=5_000_000, period_usecs=512 / 48000 * 1e6 * 1.00001, block=512,
                          rate=48000)
    assert abs(settled.frame_at(6_000_000) - (1000 + 48000 / 1.00001)) <= 1  # the estimate (ppm): kept
    early = EngineClock(frame=1000, usecs=5_000_000, period_usecs=512 / 48000 * 1e6 * 1.03, block=512, rate=48000)
    assert early.frame_at(6_000_000) == 1000 + 48000  # 3 % off (a server's first seconds): the nominal rate


def test_timetags_n_frames_apart_map_n_frames_apart_with_noisy_references():
    """On a loaded server each status's cycle time carries ±150 µs of JACK's filter error. Two
    timetags 0.5 s apart, converted at different moments (new statuses between), still map
    24 000 ± 1 frames apart; one status alone as the reference is off by several frames."""
    import random

    from jackgen.daemon.control.clock import ClockFit

    rng = random.Random(7)
    rate, block = 48000, 512
    fit = ClockFit()
    base_us = 3_000_000_000_000
    worst_fit = worst_single = 0
    t_us = 0.0
    for k in range(400):  # 100 s of statuses, 4 a second
        t_us = k * 250_000.0
        frame = 10_000_000 + int(t_us * rate / 1e6) // block * block
        true_us = base_us + (frame - 10_000_000) / rate * 1e6
        noisy = int(true_us + rng.uniform(-150, 150))
        fit.add(noisy, frame, rate, block)
        single = EngineClock(frame, noisy, block / rate * 1e6, block, rate)
        if k % 2 == 0:
            target = true_us + 2e6
            first_fit = EngineClock(frame, noisy, 0, block, rate, fit).frame_at(target)
            first_single = single.frame_at(target)
        else:  # the second timetag, 0.5 s after the first, converted one status later
            d_fit = EngineClock(frame, noisy, 0, block, rate, fit).frame_at(target + 500_000) - first_fit
            d_single = single.frame_at(target + 500_000) - first_single
            if k > 70:
                worst_fit = max(worst_fit, abs(d_fit - 24000))
                worst_single = max(worst_single, abs(d_single - 24000))
    assert worst_fit <= 1, worst_fit
    assert worst_single >= 5  # what the one-status map did: the fit is what fixes it
    assert fit.resets == 0


def test_clock_fit_starts_over_when_the_frame_clock_jumps():
    from jackgen.daemon.control.clock import ClockFit

    fit = ClockFit()
    for k in range(20):
        fit.add(1_000_000 + k * 250_000, 5000 + k * 12_000, 48000, 512)
    assert abs(fit.frame_at(1_000_000 + 20 * 250_000) - (5000 + 20 * 12_000)) < 0.5
    fit.add(1_000_000 + 20 * 250_000, 9_000_000, 48000, 512)  # a new server: its frames start elsewhere
    assert fit.resets == 1 and abs(fit.frame_at(1_000_000 + 21 * 250_000) - 9_012_000) < 0.5
    for k in range(21, 40):
        fit.add(1_000_000 + k * 250_000, 9_000_000 + (k - 20) * 12_000, 48000, 512)
    # the driver lost one cycle and never caught up: the frame at a given time is 512 lower from now on
    fit.add(1_000_000 + 40 * 250_000, 9_000_000 + 20 * 12_000 - 512, 48000, 512)
    assert fit.resets == 2 and abs(fit.frame_at(1_000_000 + 41 * 250_000) - (9_000_000 + 21 * 12_000 - 512)) < 0.5

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

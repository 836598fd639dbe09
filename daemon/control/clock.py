"""The engine clock seen from control: JACK frames <-> JACK time <-> wall-clock time, and the tempo map.

JACK time is CLOCK_MONOTONIC_RAW in µs (jack2's ``jack_get_time``), which every
process can read. The engine publishes, with each status (4 a second), the frame at
the start of a cycle, the JACK time of that moment and JACK's period estimate; from
those any JACK time maps to a frame, as scsynth maps OSC timetags to its sample clock.
Wall-clock times (OSC/NTP timetags) are first moved onto CLOCK_MONOTONIC_RAW.

One status alone is a noisy reference on a loaded machine (its cycle time carries
JACK's filter error, tens of µs), and a map rebuilt from each new one made two
timetags 0.5 s apart land up to 12 frames off 24 000, depending on which status each
was converted with. ``ClockFit`` fits one line through the last 16 s of statuses
instead, so the mapping moves by a small fraction of a frame per status and two
timetags N frames apart map N frames apart. Control needs no JACK client for it.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass


def jack_now_usecs() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC_RAW) // 1000


def unix_to_jack_usecs(unix_s: float) -> float:
    """Wall-clock seconds (as in OSC timetags) to JACK µs."""
    offset_s = time.time() - time.clock_gettime(time.CLOCK_MONOTONIC_RAW)
    return (unix_s - offset_s) * 1e6


class ClockFit:
    """frames = intercept + slope · µs, fitted through the last ``window`` status references.

    The slope is the nominal rate until the window spans ``min_span_s`` (then the fitted
    rate, within ``max_ppm`` of nominal: a real clock drifts by tens of ppm); the intercept
    is the median over the window. A reference half a block or more off the line (the frame
    clock lost a cycle against the wall clock, the server restarted) starts a new window: jitter
    is a few frames, a lost cycle a whole block."""

    def __init__(self, window: int = 64, min_span_s: float = 4.0, max_ppm: float = 1000.0) -> None:
        self.window, self.min_span_s, self.max_ppm = window, min_span_s, max_ppm
        self.rate = 0
        self._pts: list[tuple[float, float]] = []
        self.slope = 0.0
        self.intercept = 0.0
        self.resets = 0

    @property
    def valid(self) -> bool:
        return bool(self._pts) and self.slope > 0

    def add(self, usecs: int, frame: int, rate: int, block: int) -> None:
        if usecs <= 0 or rate <= 0:
            return
        # the frame clock moved against the wall clock by a cycle or more (a driver cycle lost and
        # not caught up, a new server): what plays at a given time is the new relation, at once
        if rate != self.rate or (self.valid and abs(self.frame_at(usecs) - frame) > max(block // 2, 32)):
            if self._pts:
                self.resets += 1
            self._pts.clear()
            self.rate = rate
        self._pts.append((float(usecs), float(frame)))
        if len(self._pts) > self.window:
            del self._pts[0]
        self._fit()

    def _fit(self) -> None:
        nominal = self.rate / 1e6
        u0, f0 = self._pts[0]
        slope = nominal
        if len(self._pts) >= 3 and self._pts[-1][0] - u0 >= self.min_span_s * 1e6:
            us = [u - u0 for u, _ in self._pts]
            fs = [f - f0 for _, f in self._pts]
            mu, mf = sum(us) / len(us), sum(fs) / len(fs)
            var = sum((u - mu) ** 2 for u in us)
            if var > 0:
                fitted = sum((u - mu) * (f - mf) for u, f in zip(us, fs)) / var
                if abs(fitted / nominal - 1.0) <= self.max_ppm * 1e-6:
                    slope = fitted
        self.slope = slope
        # the median, not the mean: a fresh server's first references (before JACK's filter has
        # settled) are off by milliseconds, and must not pull the line for 16 s
        self.intercept = statistics.median(f - slope * u for u, f in self._pts)

    def frame_at(self, usecs: float) -> float:
        return self.intercept + self.slope * usecs


@dataclass
class EngineClock:
    frame: int = 0  # frame at the start of the reference cycle (unwrapped past 2^32)
    usecs: int = 0  # JACK time of that frame
    period_usecs: float = 0.0
    block: int = 0
    rate: int = 0
    # the line fitted through recent references (``ClockFit``); else extrapolate from this one
    fit: ClockFit | None = None

    @property
    def valid(self) -> bool:
        return self.usecs > 0 and self.period_usecs > 0 and self.block > 0

    def frame_at(self, usecs: float) -> int:
        """The frame playing at JACK time ``usecs`` (extrapolated from the reference cycle)."""
        if self.fit is not None and self.fit.valid:
            return int(round(self.fit.frame_at(usecs)))
        if not self.valid:
            raise ValueError("no clock reference from the engine yet")
        per_usec = self.block / self.period_usecs
        if self.rate and abs(per_usec * 1e6 / self.rate - 1.0) > 0.002:
            # JACK's period estimate has not settled yet (the first seconds of a server, or after an
            # xrun): a 3 % error there moved a timetag 1 s ahead by 30 ms. The nominal rate is right
            # to a few ppm on any real clock.
            per_usec = self.rate / 1e6
        return int(round(self.frame + (usecs - self.usecs) * per_usec))

    def now(self) -> int:
        return self.frame_at(jack_now_usecs())

    def frame_at_unix(self, unix_s: float) -> int:
        return self.frame_at(unix_to_jack_usecs(unix_s))


@dataclass
class TempoMap:
    """One tempo and meter from an anchor frame (beat 0 of bar 0) on; changes keep the beat continuous."""

    bpm: float = 120.0
    beats_per_bar: int = 4
    rate: int = 48000
    anchor_frame: float = 0.0

    @property
    def beat_frames(self) -> float:
        return 60.0 / self.bpm * self.rate

    def beat_at(self, frame: float) -> float:
        return (frame - self.anchor_frame) / self.beat_frames

    def set_bpm(self, bpm: float, at_frame: int) -> None:
        """Change tempo at ``at_frame`` without moving the beat that is playing there."""
        beat = self.beat_at(at_frame)
        self.bpm = bpm
        self.anchor_frame = at_frame - beat * self.beat_frames

    def set_rate(self, rate: int) -> None:
        if rate and rate != self.rate:
            self.anchor_frame = self.anchor_frame * rate / self.rate
            self.rate = rate

    def next_boundary(self, frame: float, unit: str) -> int:
        """The first beat or bar line at or after ``frame``, as an exact frame."""
        beats = 1 if unit == "beat" else self.beats_per_bar
        k = math.ceil((self.beat_at(frame) - 1e-9) / beats)
        return int(round(self.anchor_frame + k * beats * self.beat_frames))

"""The engine clock seen from control: JACK frames <-> JACK time <-> wall-clock time, and the tempo map.

JACK time is CLOCK_MONOTONIC_RAW in µs (jack2's ``jack_get_time``), which every
process can read. The engine publishes, with each status, the frame at the start
of a cycle, the JACK time of that moment and JACK's period estimate; from those
any JACK time maps to a frame, as scsynth maps OSC timetags to its sample clock.
Wall-clock times (OSC/NTP timetags) are first moved onto CLOCK_MONOTONIC_RAW.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

from jackgen.bridge.schema import frames_until, unwrap_frame


def jack_now_usecs() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC_RAW) // 1000


def unix_to_jack_usecs(unix_s: float) -> float:
    """Wall-clock seconds (as in OSC timetags) to JACK µs."""
    offset_s = time.time() - time.clock_gettime(time.CLOCK_MONOTONIC_RAW)
    return (unix_s - offset_s) * 1e6


@dataclass
class EngineClock:
    frame: int = 0  # frame at the start of the reference cycle (unwrapped past 2^32)
    usecs: int = 0  # JACK time of that frame
    period_usecs: float = 0.0
    block: int = 0
    rate: int = 0
    # JACK's own µs -> frame conversion when control has a JACK client (exact for
    # recent cycles); otherwise extrapolate from the reference cycle above.
    to_frames: Callable[[float], int] | None = None

    @property
    def valid(self) -> bool:
        return self.usecs > 0 and self.period_usecs > 0 and self.block > 0

    def frame_at(self, usecs: float) -> int:
        """The frame playing at JACK time ``usecs`` (extrapolated from the reference cycle)."""
        if self.to_frames is not None:
            try:
                # JACK frame times are 32-bit: a time before the server's frame 0 (or across
                # the wrap, every ~24.8 h at 48 kHz) comes back wrapped; take the signed
                # distance from now instead.
                now32 = self.to_frames(jack_now_usecs())
                now = unwrap_frame(now32, self.frame) if self.frame else now32
                return now + frames_until(self.to_frames(usecs), now32)
            except Exception:
                pass
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

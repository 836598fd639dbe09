"""Safety limiter for the master bus: zero latency, bit-transparent below the ceiling.

Why this shape: it sits in the engine's process callback, so it must cost a few
vectorised numpy calls per block and add no latency (players hear the master
live). Per block it finds the peak; if the peak would pass the ceiling the gain
ramps down across the block to ``ceiling / peak`` and a final clip catches what
the ramp's first samples still let through. Above the ceiling nothing ever
leaves; below it, with the gain back at 1, samples pass unchanged (the engine's
"file in == file out" test depends on that). Release is exponential per block.

The real mastering limiter (true-peak, look-ahead) belongs to the master chain;
this is the last line of defence in front of the speakers.
"""

from __future__ import annotations

import math

import numpy as np


class SafetyLimiter:
    """Process-thread object: :meth:`process` allocates nothing beyond numpy scalars."""

    def __init__(self, sample_rate: int, max_block: int, channels: int = 2, ceiling_db: float = -0.3,
                 release_ms: float = 80.0) -> None:
        self.ceiling = float(10.0 ** (ceiling_db / 20.0))
        self.ceiling_db = ceiling_db
        self.release_s = release_ms / 1000.0
        self.sample_rate = sample_rate
        self.gain = 1.0
        self.engaged_blocks = 0
        self._scratch = np.zeros((max_block, channels), dtype=np.float32)
        self._ramp = np.zeros((max_block, 1), dtype=np.float32)
        self._n = 0
        self._release_coef = 0.0

    def set_block_size(self, n: int) -> None:
        """Not process thread: precomputes the ramp for blocks of ``n`` frames."""
        if n > self._scratch.shape[0]:
            self._scratch = np.zeros((n, self._scratch.shape[1]), dtype=np.float32)
            self._ramp = np.zeros((n, 1), dtype=np.float32)
        self._ramp[:n, 0] = (np.arange(1, n + 1, dtype=np.float64) / n).astype(np.float32)
        self._release_coef = 1.0 - math.exp(-n / (self.release_s * self.sample_rate))
        self._n = n

    def process(self, block: np.ndarray) -> None:
        """Limit ``block`` (frames, channels) in place. Process thread."""
        n = block.shape[0]
        if n != self._n:
            self.set_block_size(n)  # only on a block-size change
        scratch = self._scratch[:n]
        np.abs(block, out=scratch)
        peak = float(scratch.max()) if n else 0.0
        g0 = self.gain
        if peak > self.ceiling:
            target = self.ceiling / peak
            g1 = target if target < g0 else g0 + (1.0 - g0) * self._release_coef
            if g1 > target:
                g1 = target
        elif g0 < 1.0:
            g1 = g0 + (1.0 - g0) * self._release_coef
            if g1 > 0.9999:
                g1 = 1.0
        else:
            return  # transparent: gain is 1 and nothing reaches the ceiling
        self.engaged_blocks += 1
        ramp = self._ramp[:n]
        # gain curve g0 -> g1 across the block, in scratch
        np.multiply(ramp, g1 - g0, out=scratch[:, :1])
        scratch[:, :1] += g0
        block *= scratch[:, :1]
        np.clip(block, -self.ceiling, self.ceiling, out=block)
        self.gain = g1

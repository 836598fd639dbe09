"""Channel and sample-rate conversion for audio on its way into a track ring."""

from __future__ import annotations

import numpy as np
import soxr


def to_stereo(frames: np.ndarray) -> np.ndarray:
    """(n,) or (n, ch) -> (n, 2) float32. Mono is copied to both sides; beyond two
    channels the first two are kept (a track is stereo; downmix upstream if needed)."""
    a = np.asarray(frames, dtype=np.float32)
    if a.ndim == 1:
        a = a[:, None]
    if a.shape[1] == 1:
        return np.repeat(a, 2, axis=1)
    if a.shape[1] == 2:
        return np.ascontiguousarray(a)
    return np.ascontiguousarray(a[:, :2])


class StreamResampler:
    """Chunked resampling (soxr, high quality); a pass-through when the rates match,
    so same-rate audio reaches the engine bit for bit."""

    def __init__(self, in_rate: int, out_rate: int, channels: int = 2, quality: str = "HQ") -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._rs = None if in_rate == out_rate else soxr.ResampleStream(
            in_rate, out_rate, channels, dtype="float32", quality=quality
        )

    def process(self, chunk: np.ndarray, last: bool = False) -> np.ndarray:
        if self._rs is None:
            return chunk
        return self._rs.resample_chunk(chunk, last=last)

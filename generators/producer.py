"""Writing a stream into a track ring: the prefill first ("primed" once it is in), then the rest at the
ring's pace. Shared by the feeder (files) and the generator workers' pumps (takes)."""

from __future__ import annotations

from collections.abc import Callable


def write_primed(ring, frames, written: int, prefill: int, primed: bool, on_primed: Callable[[int], None],
                 should_stop: Callable[[], bool], max_ahead: int | None = None) -> tuple[int, bool]:
    """Write a stream's frames into its ring; call ``on_primed(frames written)`` once ``prefill``
    frames are in. With ``max_ahead`` the ring never holds more than that for the consumer — and
    the consumer only starts after "primed" — so the prefill goes in first, then the rest.
    Returns (written, primed)."""
    if not primed:
        k = max(0, prefill - written)
        if k and max_ahead is not None:
            written += ring.write_blocking(frames[:k], should_stop=should_stop, max_ahead=max_ahead)
            frames = frames[k:]
        if max_ahead is None:
            written += ring.write_blocking(frames, should_stop=should_stop)
            frames = frames[:0]
        if written >= prefill:
            primed = True
            on_primed(written)
    if frames.shape[0]:
        written += ring.write_blocking(frames, should_stop=should_stop, max_ahead=max_ahead)
    return written, primed

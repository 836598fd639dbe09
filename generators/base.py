"""The generator backend interface, so the worker loop (and later the Redis queue) does not care
which model makes the audio.

A backend is loaded once per worker process (``load``: SoundFont, model weights)
and kept warm. ``generate`` is an iterator of ``(variation, chunk)`` pairs, each
chunk an (n, 2) float32 array at the engine rate, yielded as soon as it exists;
chunks of one variation come in order, variations may interleave (MusicGen
makes them as one batch). It checks ``ctx.should_stop()`` at least once per
chunk, which is how cancel stops a job within one chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jackgen.common.media import MediaError, MediaPolicy
from jackgen.generators.job import JobError, JobSpec


FIRST_CHUNK_FRAMES = 1024  # small first chunk: the track starts ~20 ms after the job does
CHUNK_FRAMES = 8192


@dataclass
class TakeContext:
    rate: int  # engine sample rate: every chunk is at this rate
    session_dir: Path
    takes: list[str]  # take ids, one per variation
    should_stop: Callable[[], bool] = lambda: False
    info: dict = field(default_factory=dict)  # the backend records model, device, resolved params here
    progress: Callable[[float], None] = lambda fraction: None

    def stems_dir(self, k: int) -> Path:
        return self.session_dir / "midi_stems" / self.takes[k]

    media: MediaPolicy | None = None  # which files a job may name (from the job; else the sessions folder)

    def allowed(self, path: str, what: str, kind: str = "audio") -> Path:
        """A file named in a job, through the media policy: a worker checks again what control
        checked, since a job may come from elsewhere than control (a queue)."""
        media = self.media or MediaPolicy.for_session(self.session_dir, self.session_dir.parent)
        try:
            return media.resolve(path, what, kind=kind)
        except MediaError as e:
            raise JobError(str(e)) from None


class Backend:
    name = "?"

    def load(self) -> None:
        """Load what the backend needs (weights, SoundFont); called once per worker."""

    def describe(self) -> dict:
        return {"backend": self.name}

    def generate(self, spec: JobSpec, ctx: TakeContext) -> Iterator[tuple[int, np.ndarray]]:
        raise NotImplementedError

    def close(self) -> None:
        pass


def fade_tail(chunk: np.ndarray, frames_left_after: int, fade_frames: int) -> None:
    """Fade the last ``fade_frames`` of a stream in place (no click where a take is cut)."""
    n = chunk.shape[0]
    start = n + frames_left_after - fade_frames  # index in chunk where the fade begins
    if start >= n:
        return
    i0 = max(0, start)
    pos = np.arange(i0, n) - start
    chunk[i0:] *= (1.0 - pos / float(fade_frames))[:, None].astype(np.float32)



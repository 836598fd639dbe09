"""Control's runtime picture of each track and stream (what the session file keeps is in ``session``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, fields
from typing import Any

from jackgen.common.errors import JackgenError
from jackgen.daemon.control.session import TrackSettings
from jackgen.generators.job import BACKENDS


@dataclass
class TrackState(TrackSettings):
    """A track as control knows it: what the session keeps (``TrackSettings``) and what it is doing."""

    armed_epoch: int = 0  # the armed clip's stream, once it waits in the ring
    # runtime (not persisted)
    state: str = "idle"
    epoch: int = 0
    stream_id: str | None = None
    source: str | None = None  # what plays now
    started_frame: int | None = None
    ended_frame: int | None = None
    error: str | None = None

    def settings(self) -> TrackSettings:
        """What the session file keeps of this track."""
        return TrackSettings(**{f.name: getattr(self, f.name) for f in fields(TrackSettings)})

    def restore(self, s: TrackSettings) -> None:
        for f in fields(TrackSettings):
            setattr(self, f.name, getattr(s, f.name))


@dataclass
class Stream:
    id: str
    track: int
    epoch: int
    path: str
    primed: asyncio.Future = field(repr=False)
    done: bool = False
    producer: Any = None  # None: the feeder; else the WorkerHandle of a generator worker
    take: str | None = None  # a generated stream: its take's file, once written
    generated: bool = False  # a generator's stream (started when primed), not a file's (started by play)
    relay_key: str | None = None  # a remote worker's stream, relayed by the feeder from this Redis key
    finished: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def end(self) -> None:
        self.done = True
        self.finished.set()


def parse_on_off(value: object, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("on", "1", "true", "yes"):
        return True
    if isinstance(value, str) and value.lower() in ("off", "0", "false", "no"):
        return False
    raise JackgenError(f"{what} must be on or off, got {value!r}")


def track_id(t: int | None) -> int | str:
    """How replies name a chain's owner: 1-16, or "master"."""
    return "master" if t is None else t + 1


CRUMB_ROLES = ("engine", "feeder", *(f"worker-{b}" for b in BACKENDS))

"""The set of rings one jackgen instance uses: 16 track rings, a command ring, an event ring.

The control process creates them (after reclaiming anything a crashed run left
behind) and owns their names; the engine, feeders and generator workers attach.
Because the rings outlive any one engine, a restarted engine picks up the
streams exactly where its predecessor left them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from jackgen.bridge import schema as S
from jackgen.bridge.ring import AudioRing, MessageRing, RingError, mapped_by, ring_name

N_TRACKS = 16


def track_role(track_index: int) -> str:
    return f"track{track_index + 1:02d}"


def pow2_at_least(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


@dataclass
class InstanceRings:
    instance: str
    tracks: list[AudioRing]
    commands: MessageRing
    events: MessageRing

    @classmethod
    def create(cls, instance: str, ring_frames: int, sample_rate: int = 0) -> InstanceRings:
        cap = pow2_at_least(ring_frames)
        made: list = []
        try:
            for t in range(N_TRACKS):
                made.append(AudioRing.create(ring_name(instance, track_role(t)), cap, 2, sample_rate))
            cmd = MessageRing.create(ring_name(instance, "cmd"), S.CMD_CAPACITY, S.CMD_RECORD_SIZE)
            made.append(cmd)
            evt = MessageRing.create(ring_name(instance, "evt"), S.EVT_CAPACITY, S.EVT_RECORD_SIZE)
            made.append(evt)
        except BaseException:
            for r in made:
                r.unlink()
                r.close()
            raise
        return cls(instance, made[:N_TRACKS], cmd, evt)

    @classmethod
    def attach(cls, instance: str, timeout_s: float = 0.0) -> InstanceRings:
        """Attach to an instance's rings, waiting up to ``timeout_s`` for control to create them."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                tracks = [AudioRing.attach(ring_name(instance, track_role(t))) for t in range(N_TRACKS)]
                cmd = MessageRing.attach(ring_name(instance, "cmd"))
                evt = MessageRing.attach(ring_name(instance, "evt"))
                return cls(instance, tracks, cmd, evt)
            except RingError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)

    def replaced(self) -> bool:
        """True when the names no longer lead to these segments: control has made new rings
        (after a crash of everything, or a change of ring size), and whoever holds these old
        ones must attach again."""
        return self.commands.replaced()

    def in_use_elsewhere(self) -> list[int]:
        """Pids of other processes that have these rings mapped (the engine, the feeder, workers)."""
        return mapped_by(self.commands.name)

    def all(self) -> list:
        return [*self.tracks, self.commands, self.events]

    def close(self, unlink: bool = False) -> None:
        for r in self.all():
            if unlink:
                r.unlink()
            r.close()

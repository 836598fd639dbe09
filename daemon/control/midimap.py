"""MIDI mapping: which note/CC/program change does what. Editable JSON, learnable.

A binding is ``{"type": "note"|"cc"|"program", "channel": 1-16 or null (any),
"number": 0-127, "action": ..., "track": 1-16}`` with actions:

=========  ====================================================================
trigger    note-on starts the track's armed clip on the note's exact frame (in
           the engine); with ``"gate": true`` the note-off stops it
gain       CC value -> fader (100 = 0 dB, 127 ≈ +4 dB, 0 = silence), smoothed
pan        CC value -> balance (0 = left, 64 = centre, 127 = right)
mute/solo  note-on or CC >= 64 toggles (note) or sets (CC) the flag
play/stop  note-on or CC >= 64 plays the armed clip / stops the track
tempo      CC value -> 60 + value BPM; a program change -> 60 + 2 × program
param      CC value -> the chain plugin ``plugin``'s parameter ``param``, 0-127
           spread over its range (over its choices, for a choice), gliding
bypass     note-on toggles, CC >= 64 sets the bypass of chain plugin ``plugin``
=========  ====================================================================

Default (the README's MIDI section): notes 36-51 on any channel trigger tracks 1-16; CC 7 on
channel N sets track N's gain, CC 10 its pan. Notes run in the engine (sample
accurate); everything else runs in control on events from JACK MIDI or rtmidi.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

ACTIONS = ("trigger", "gain", "pan", "mute", "solo", "play", "stop", "tempo", "param", "bypass")
TYPES = ("note", "cc", "program")


class MidiMapError(ValueError):
    pass


@dataclass(frozen=True)
class Binding:
    type: str
    number: int
    action: str
    track: int | None = None
    channel: int | None = None  # 1-16, None = any
    gate: bool = False
    plugin: int | None = None  # param/bypass: position in the track's chain
    param: str | None = None  # param: the parameter's name

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise MidiMapError(f"binding type must be one of {', '.join(TYPES)}, got {self.type!r}")
        if not isinstance(self.number, int) or not 0 <= self.number <= 127:
            raise MidiMapError(f"binding number must be 0-127, got {self.number!r}")
        if self.action not in ACTIONS:
            raise MidiMapError(f"binding action must be one of {', '.join(ACTIONS)}, got {self.action!r}")
        if self.action != "tempo" and not (isinstance(self.track, int) and 1 <= self.track <= 16):
            raise MidiMapError(f"action {self.action} needs a track 1-16, got {self.track!r}")
        if self.channel is not None and not (isinstance(self.channel, int) and 1 <= self.channel <= 16):
            raise MidiMapError(f"channel must be 1-16 or null (any), got {self.channel!r}")
        if self.action == "trigger" and self.type != "note":
            raise MidiMapError("trigger bindings are notes")
        if self.action in ("param", "bypass") and not (isinstance(self.plugin, int) and self.plugin >= 0):
            raise MidiMapError(f"action {self.action} needs plugin (its position in the chain, from 0)")
        if self.action == "param" and not (isinstance(self.param, str) and self.param):
            raise MidiMapError("action param needs param (the parameter's name)")
        if self.action == "param" and self.type != "cc":
            raise MidiMapError("param bindings are CCs")

    def matches(self, kind: str, channel: int, number: int) -> bool:
        return self.type == kind and self.number == number and (self.channel is None or self.channel == channel)


def default_bindings() -> list[Binding]:
    out = [Binding("note", 36 + i, "trigger", i + 1) for i in range(16)]
    out += [Binding("cc", 7, "gain", ch, channel=ch) for ch in range(1, 17)]
    out += [Binding("cc", 10, "pan", ch, channel=ch) for ch in range(1, 17)]
    return out


def decode(status: int, d1: int, d2: int) -> tuple[str, int, int, int] | None:
    """(kind, channel 1-16, number, value) for note-on/off, CC and program change."""
    kind = status & 0xF0
    ch = (status & 0x0F) + 1
    if kind == 0x90 and d2 > 0:
        return "note", ch, d1, d2
    if kind == 0x80 or (kind == 0x90 and d2 == 0):
        return "note_off", ch, d1, 0
    if kind == 0xB0:
        return "cc", ch, d1, d2
    if kind == 0xC0:
        return "program", ch, d1, 0
    return None


class MidiMap:
    def __init__(self, bindings: list[Binding] | None = None) -> None:
        self.bindings = list(default_bindings() if bindings is None else bindings)

    @classmethod
    def load(cls, path: Path) -> MidiMap:
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text())
            return cls([Binding(**b) for b in data["bindings"]])
        except (ValueError, KeyError, TypeError) as e:
            raise MidiMapError(f"MIDI map {path} is invalid: {e}") from None

    def to_json(self) -> dict:
        return {"bindings": [asdict(b) for b in self.bindings]}

    def lookup(self, kind: str, channel: int, number: int) -> list[Binding]:
        k = "note" if kind == "note_off" else kind
        return [b for b in self.bindings if b.matches(k, channel, number)]

    def note_triggers(self) -> tuple[list[int], dict[int, bool]]:
        """The engine's table: note -> track index (-1 = none), and gate per track index."""
        notes = [-1] * 128
        gates: dict[int, bool] = {}
        for b in self.bindings:
            if b.action == "trigger" and b.track is not None:
                notes[b.number] = b.track - 1  # the engine matches any channel for triggers
                gates[b.track - 1] = gates.get(b.track - 1, False) or b.gate
        return notes, gates

    def learn(self, kind: str, channel: int, number: int, action: str, track: int | None,
              gate: bool = False, plugin: int | None = None, param: str | None = None) -> Binding:
        """Bind (kind, channel, number) to an action, replacing what that control or action had."""
        k = "note" if kind == "note_off" else kind
        b = Binding(k, number, action, track, channel if k != "note" or action != "trigger" else None, gate,
                    plugin, param)
        self.bindings = [x for x in self.bindings if not x.matches(k, channel, number)
                         and not (x.action == action and x.track == track and x.type == k
                                  and x.plugin == plugin and x.param == param)]
        self.bindings.append(b)
        return b

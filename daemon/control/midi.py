"""MIDI on the control side: the mapping's actions (CC, program change, controller notes) and MIDI learn.

Mixed into :class:`jackgen.daemon.control.control.Control`. Note triggers from JACK MIDI run in the
engine on their exact frame; everything else a message maps to runs here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from jackgen.common.errors import JackgenError, check_track
from jackgen.common.files import atomic_write_json
from jackgen.daemon.control.midimap import ACTIONS, MidiMapError, decode
from jackgen.dsp.mix import cc_to_gain_db, cc_to_pan
from jackgen.generators.producer import LIVE

log = logging.getLogger("jackgen.control")


class Midi:
    # ------------------------------------------------------------ MIDI
    def on_midi(self, status: int, d1: int, d2: int, source: str, frame: int | None = None) -> None:
        """Every MIDI message (JACK midi_in via the engine, with its frame; or a controller via rtmidi)."""
        self.live_midi(status, d1, d2, frame)
        ev = decode(status, d1, d2)
        if ev is None:
            return
        kind, ch, num, val = ev
        self.midi_log = (self.midi_log + [{"source": source, "type": kind, "channel": ch, "number": num,
                                           "value": val}])[-16:]
        if self._learn is not None and not self._learn.done() and kind in ("note", "cc", "program"):
            self._learn.set_result((kind, ch, num))
            return
        from_engine = source.startswith("jack:midi_in")
        for b in self.midimap.lookup(kind, ch, num):
            try:
                self._midi_action(b, kind, val, from_engine)
            except JackgenError as err:
                log.warning("MIDI %s %d/%d from %s -> %s: %s", kind, ch, num, source, b.action, err)

    def live_midi(self, status: int, d1: int, d2: int, frame: int | None) -> None:
        """A channel message on channel N goes to track N's instrument while that track plays live
        (``live``), ``plugins.live_latency_ms`` after its frame (a controller's, without one: after now)."""
        if not 0x80 <= status < 0xF0:
            return
        t = status & 0x0F
        tr = self.tracks[t]
        if tr.source != LIVE or tr.started_frame is None or self.feeder is None or tr.state not in (
                "playing", "underrun"):
            return
        at = (frame if frame is not None else self.now_frame()) - tr.started_frame + self.live_latency_frames()
        data = [status, d1 & 0x7F, d2 & 0x7F][: 2 if status & 0xF0 in (0xC0, 0xD0) else 3]
        self.live_midi_events += 1
        self._spawn(self._send_live_midi(t, int(at), data))

    def live_latency_frames(self) -> int:
        return int(round(self.cfg.plugins.live_latency_ms * 1e-3 * (self.sample_rate or 48000)))

    async def _send_live_midi(self, t: int, at: int, data: list[int]) -> None:
        with contextlib.suppress(JackgenError):
            await self.feeder.send({"op": "midi", "track": t, "events": [[at, data]]})

    def _midi_action(self, b, kind: str, val: int, from_engine: bool) -> None:
        on = kind == "note" or (kind == "cc" and val >= 64)
        if b.action == "trigger":
            if from_engine:
                return  # the engine already started it on the note's exact frame
            if kind == "note":
                self._spawn(self.play(b.track, None, "now"))
            elif kind == "note_off" and b.gate:
                self._spawn(self.stop_track(b.track, "now"))
        elif kind == "note_off":
            return
        elif b.action == "gain" and kind == "cc":
            self.set_gain(b.track, cc_to_gain_db(val))
        elif b.action == "pan" and kind == "cc":
            self.set_pan(b.track, cc_to_pan(val))
        elif b.action in ("mute", "solo"):
            current = getattr(self.tracks[b.track - 1], b.action)
            self.set_flag(b.action, b.track, (not current) if kind == "note" else on)
        elif b.action == "play" and on:
            self._spawn(self.play(b.track, None, "now"))
        elif b.action == "stop" and on:
            self._spawn(self.stop_track(b.track, "now"))
        elif b.action == "tempo":
            self.set_tempo(60 + val if kind == "cc" else 60 + 2 * b.number)
        elif b.action == "param" and kind == "cc":
            self._spawn(self._midi_param(b, val))
        elif b.action == "bypass":
            t = b.track - 1
            if b.plugin is not None and b.plugin < len(self.tracks[t].chain):
                cur = bool(self.tracks[t].chain[b.plugin].get("bypass", False))
                self._spawn(self.chain_bypass(b.track, b.plugin, (not cur) if kind == "note" else on))

    async def _midi_param(self, b, val: int) -> None:
        """CC 0-127 over the parameter's range (or its choices)."""
        t = b.track - 1
        if b.plugin is None or b.plugin >= len(self.tracks[t].chain):
            return
        try:
            spec = self._chain_param_spec(self.tracks[t].chain[b.plugin], b.param)
        except JackgenError:
            return  # the chain changed since the binding was learned
        if spec.choices:
            value: object = spec.choices[min(len(spec.choices) - 1, val * len(spec.choices) // 128)]
        elif spec.min is not None and spec.max is not None:
            value = spec.min + (spec.max - spec.min) * val / 127.0
        else:
            return
        with contextlib.suppress(JackgenError):
            await self.chain_param(b.track, b.plugin, b.param, value)

    async def midi_learn(self, action: object, track: object = None, gate: object = False,
                         timeout_s: float = 30.0, plugin: object = None, param: object = None) -> dict:
        """Bind the next note/CC/program change that arrives to ``action`` (and ``track``)."""
        if action not in ACTIONS:
            raise JackgenError(f"MIDI learn: action must be one of {', '.join(ACTIONS)}, got {action!r}")
        t = None if action == "tempo" else check_track(track) + 1
        if action in ("param", "bypass"):
            _, chain, i = self._chain_index(t, plugin)
            if action == "param":
                self._chain_param_spec(chain[i], param)
        if self._learn is not None and not self._learn.done():
            raise JackgenError("MIDI learn is already waiting for a control; move one, or wait for it to time out")
        self._learn = asyncio.get_running_loop().create_future()
        log.info("MIDI learn: move a control for %s%s", action, f" track {t}" if t else "")
        try:
            kind, ch, num = await asyncio.wait_for(self._learn, timeout_s)
        except asyncio.TimeoutError:
            raise JackgenError(f"MIDI learn: nothing arrived within {timeout_s:.0f} s", status=408) from None
        finally:
            self._learn = None
        try:
            b = self.midimap.learn(kind, ch, num, str(action), t, bool(gate),
                                   plugin if action in ("param", "bypass") else None,
                                   param if action == "param" else None)
        except MidiMapError as e:
            raise JackgenError(f"MIDI learn: {e}") from None
        atomic_write_json(self.session_dir / "midi_map.json", self.midimap.to_json())
        if self.engine_status:
            self._send_midi_map()
        log.info("MIDI learn: %s %d on channel %s -> %s %s", b.type, b.number, b.channel or "any", b.action,
                 b.track or "")
        from dataclasses import asdict as _asdict

        return {"binding": _asdict(b)}

    def midi_map(self) -> dict:
        return {**self.midimap.to_json(), "recent": self.midi_log,
                "controllers": sorted(self.midi_inputs.open) if self.midi_inputs else []}

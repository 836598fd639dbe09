"""Control's link to the engine: commands out, events in, the engine clock, tempo and transport.

Mixed into :class:`jackgen.daemon.control.control.Control`. Everything the engine says arrives in
``_on_event`` (status, meters, track states, hello, master-chain builds, pongs, MIDI); a new
engine's hello replays the whole mix into it (``_replay_state``). Commands are fixed-size records on
the command ring (``jackgen.bridge.schema``); a full ring means the engine is not taking them.
"""

from __future__ import annotations

import asyncio
import logging
import time

from jackgen.bridge import schema as S
from jackgen.generators.producer import LIVE
from jackgen.bridge.instance import N_TRACKS
from jackgen.common.errors import JackgenError, Unavailable, check_finite
from jackgen.daemon.control.clock import EngineClock

log = logging.getLogger("jackgen.control")

EVENT_POLL_S = 0.005
COMMAND_RETRY_S = 0.002  # while the command ring is full: about a fifth of a 512-frame block


class EngineLink:
    # ------------------------------------------------------------ engine link
    def send(self, *cmd: object) -> None:
        """One command to the engine, after any mixer values still waiting (``send_latest``)."""
        assert self.rings is not None
        if (self._latest and not self._flush_latest()) or not self.rings.commands.put(S.pack(*cmd)):
            raise Unavailable("the engine is not taking commands (command ring full): is it running?")

    def send_latest(self, op: int, t: int, value: object) -> None:
        """A mixer value (gain, pan, mute, solo) of which only the latest counts.

        The engine takes 64 commands a block (about 6 000 a second at 512 frames); a flood of
        fader moves over TCP comes faster than that. When the command ring is full, the value
        waits here, one per track and kind (a newer one replaces it), and goes in as soon as there
        is room. So no change is refused, the engine ends on the last value sent, and the ring
        never grows: ``send`` and ``sync`` put the waiting values in first, keeping the order.
        """
        assert self.rings is not None
        if not self._latest and self.rings.commands.put(S.pack(op, t, value)):
            return
        self._latest.pop((op, t), None)
        self._latest[(op, t)] = value
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop(), name="mixer-flush")

    def _flush_latest(self) -> bool:
        """Put the waiting mixer values into the command ring; False if it filled up first."""
        assert self.rings is not None
        while self._latest:
            (op, t), v = next(iter(self._latest.items()))
            if not self.rings.commands.put(S.pack(op, t, v)):
                return False
            del self._latest[(op, t)]
        return True

    async def _flush_loop(self) -> None:
        while not self._flush_latest():
            await asyncio.sleep(COMMAND_RETRY_S)

    async def _put_when_room(self, timeout_s: float, *cmd: object) -> None:
        """``send``, waiting (up to ``timeout_s``) for the engine to make room in the command ring."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.send(*cmd)
                return
            except Unavailable:
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(COMMAND_RETRY_S)

    async def _event_loop(self) -> None:
        assert self.rings is not None
        evt = self.rings.events
        while True:
            got = 0
            while (raw := evt.get()) is not None and got < 1000:
                got += 1
                try:
                    self._on_event(S.unpack(raw))
                except Exception:
                    log.exception("bad event from engine")
            await asyncio.sleep(EVENT_POLL_S)

    def _on_event(self, e: list) -> None:
        op = e[0]
        if op == S.EVT_STATUS:
            st = self.engine_status = dict(zip(S.STATUS_FIELDS, e[1:]))
            self._status_rx_mono = time.monotonic()
            st["frame_time"] = self.unwrap(st["frame_time"])
            self.clock_fit.add(st.get("cycle_usecs", 0), st["frame_time"], st["sample_rate"], st["block_size"])
            self.clock = EngineClock(st["frame_time"], st.get("cycle_usecs", 0), st.get("period_usecs", 0.0),
                                     st["block_size"], st["sample_rate"], self.clock_fit)
            self.tempo.set_rate(st["sample_rate"])
        elif op == S.EVT_METERS:
            self.meters = {"frame": e[1], "track_peak": e[2], "track_rms": e[3], "master_peak": e[4],
                           "master_rms": e[5]}
        elif op == S.EVT_TRACK:
            _, t, state, epoch, frame = e
            frame = self.unwrap(frame)
            tr = self.tracks[t]
            if state == S.TRACK_ARMED:
                if epoch == tr.armed_epoch:
                    tr.state = "armed"
                return
            if epoch != tr.epoch and epoch == tr.armed_epoch and state == S.TRACK_PLAYING:
                tr.epoch = epoch  # a note (or play) started the armed clip
                tr.source = tr.armed
                tr.stream_id = self.streams[t].id if t in self.streams else None
            if epoch != tr.epoch:
                return  # about a stream that has been replaced
            name = S.TRACK_STATE_NAMES.get(state, "?")
            if state == S.TRACK_PLAYING:
                if tr.started_frame is None or tr.source != LIVE:  # (live MIDI is placed from the first)
                    tr.started_frame = frame
            if state in (S.TRACK_ENDED, S.TRACK_ABORTED, S.TRACK_IDLE):
                tr.ended_frame = frame
                self._finish_stream(t)
                if tr.armed:  # the clip played (or was stopped): get it ready for the next trigger
                    tr.armed_epoch = 0
                    self._spawn(self._arm(t))
            if state == S.TRACK_UNDERRUN:
                self.track_underruns[t] += 1
                log.warning("track %d ran dry at frame %d (underrun)", t + 1, frame)
            tr.state = name
        elif op == S.EVT_HELLO:
            _, pid, rate, block, _ntracks = e
            self.engine_pid = pid
            self.engine_hellos += 1
            self.engine_status.update({"sample_rate": rate, "block_size": block})
            self._status_rx_mono = time.monotonic()
            log.info("engine %d says hello (%d Hz, %d frames); restoring state", pid, rate, block)
            self.check_crumb("engine", self.exit_code_of("engine"))
            self.master_chain_latency = 0
            for fut in self._master_waits.values():  # what the previous engine never answered
                if not fut.done():
                    fut.set_result((False, 0, "the engine restarted"))
            self._replay_state()
        elif op == S.EVT_MASTER_CHAIN:
            _, gen, ok, latency, err = e
            if ok:
                self.master_chain_latency = int(latency)
            fut = self._master_waits.get(gen)
            if fut is not None and not fut.done():
                fut.set_result((bool(ok), int(latency), str(err)))
        elif op == S.EVT_PONG:
            fut = self._pongs.pop(e[1], None)
            if fut and not fut.done():
                fut.set_result(self.unwrap(e[2]))
        elif op == S.EVT_MIDI:
            _, frame, status, d1, d2 = e
            self.on_midi(status, d1, d2, "jack:midi_in", self.unwrap(frame))
        elif op == S.EVT_RELOCK:
            _, frame, gap, moved = e
            self.relocks += 1
            log.warning("JACK skipped %d frames before frame %d (an xrun): %d playing track(s) dropped as much "
                        "to stay on the frame clock", gap, self.unwrap(frame), moved)
        elif op == S.EVT_ERROR:
            log.error("engine reported error code %s (track %s, detail %s)", e[1], e[2], e[3])

    async def _connections_loop(self) -> None:
        """Every 2 s: the engine's published JACK connections go into the session."""
        while True:
            await asyncio.sleep(2.0)
            try:
                await asyncio.to_thread(self.connections.update)
            except Exception:
                log.exception("keeping JACK connections failed")

    def _send_midi_map(self) -> None:
        """Note triggers run in the engine (sample accurate); CC and the rest run here."""
        notes, gates = self.midimap.note_triggers()
        self.send(S.CMD_MIDI_CC, 0)
        for note, track in enumerate(notes):
            self.send(S.CMD_MAP_NOTE, note, track)
        for t in range(N_TRACKS):
            self.send(S.CMD_GATE, t, int(gates.get(t, False)))

    def _replay_state(self) -> None:
        self._send_midi_map()
        self._send_master()
        if self._engine_chain() or self._master_gen:
            self._spawn(self._replay_master_chain())
        for t, tr in enumerate(self.tracks):
            self.send(S.CMD_GAIN, t, tr.gain_db)
            self.send(S.CMD_PAN, t, tr.pan)
            self.send(S.CMD_MUTE, t, int(tr.mute))
            self.send(S.CMD_SOLO, t, int(tr.solo))
            if tr.state in ("playing", "pending", "underrun") and tr.epoch:
                self.send(S.CMD_PLAY, t, tr.epoch, 0, 1)  # resume where the rings left off
            elif tr.state == "armed" and tr.armed_epoch:
                self.send(S.CMD_ARM, t, tr.armed_epoch)  # the clip still waits in the ring

    async def sync(self, timeout_s: float = 2.0) -> int:
        """Wait until the engine has applied every command sent so far; returns its frame time."""
        self._ping_token += 1
        token = self._ping_token
        fut = asyncio.get_running_loop().create_future()
        self._pongs[token] = fut
        try:
            await self._put_when_room(timeout_s, S.CMD_PING, token)  # after everything sent before
            return await asyncio.wait_for(fut, timeout_s)
        except Unavailable:
            self._pongs.pop(token, None)
            raise
        except asyncio.TimeoutError:
            self._pongs.pop(token, None)
            raise Unavailable("the engine did not answer within 2 s: is JACK running? see `jackgen status`") from None

    @property
    def sample_rate(self) -> int:
        return int(self.engine_status.get("sample_rate") or 0)

    def engine_alive(self) -> bool:
        return bool(self.engine_status) and time.monotonic() - self._status_rx_mono < 2.0

    def unwrap(self, frame32: int) -> int:
        """Frames from the engine are 32-bit JACK frame times; control counts on past the wrap."""
        near = self.clock.frame if self.clock.frame else frame32
        return S.unwrap_frame(int(frame32), near)

    def now_frame(self) -> int:
        """The engine's current frame, from the JACK clock reference in its last status."""
        if not self.clock.valid:
            raise Unavailable("the engine has not reported its clock yet: is it running? see `jackgen status`")
        return self.clock.now()

    def resolve_at(self, at: str | int | None) -> int:
        """'now' -> 0 (next block); an int -> that absolute frame; 'beat'/'bar' -> the next one."""
        if at is None or at == "now" or at == 0:
            return 0
        if isinstance(at, bool):
            raise JackgenError("'at' must be now, beat or bar, or a frame number")
        if isinstance(at, int) or (isinstance(at, str) and at.isdigit()):
            frame = int(at)
            if frame < 0:
                raise JackgenError("'at' frame must be >= 0")
            if frame <= S.FRAME_MASK and self.clock.frame > S.FRAME_MASK:
                frame = self.unwrap(frame)  # a plain JACK frame time, after the 32-bit wrap
            return frame
        if at in ("beat", "bar"):
            self.follow_transport()
            # at least a block and a little slack ahead, so the command arrives in time
            earliest = self.now_frame() + self.clock.block + int(0.02 * self.clock.rate)
            return self.tempo.next_boundary(earliest, at)
        raise JackgenError(f"'at' must be now, beat or bar, or a frame number, got {at!r}")

    def follow_transport(self) -> bool:
        """While another client is JACK timebase master and rolls the transport, take its bar grid.

        The engine reads the transport in its process callback and reports the BBT
        position together with the exact frame it holds at (a status, every 250 ms);
        the grid follows from there without converting any times. Precision is the
        master's tick (BBT carries whole ticks). Stopped or no master: jackgen's own map.
        """
        bbt = self.engine_status.get("bbt")
        if not bbt:
            self.tempo_source = "jackgen"
            return False
        frame32, bar, beat, tick, tpb, bpb, bpm = bbt
        beats = (bar - 1) * float(bpb) + (beat - 1) + tick / float(tpb or 1920)
        self.tempo.bpm = float(bpm)
        self.tempo.beats_per_bar = max(1, int(round(bpb)))
        self.tempo.anchor_frame = self.unwrap(frame32) - beats * self.tempo.beat_frames
        self.tempo_source = "jack transport"
        return True

    def set_tempo(self, bpm: object) -> dict:
        b = check_finite("tempo", bpm, 20.0, 400.0, "BPM")
        at = self.now_frame() if self.clock.valid else 0
        self.tempo.set_bpm(b, at)
        self.save_session()
        return {"tempo_bpm": b, "anchor_frame": self.tempo.anchor_frame}

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)
        return task

    async def transport(self, action: str) -> dict:
        """Start/stop JACK transport (Ardour and other clients follow it): the engine's client does it."""
        self.send(S.CMD_TRANSPORT, 1 if action == "start" else 0)
        await self.sync()
        return {"transport": action}

    def _send_maybe_timed(self, op: int, t: int, value: object, at_frame: int | None) -> None:
        if at_frame:
            self.send(op, t, value, int(at_frame) & S.FRAME_MASK)  # applied in the block of that frame
        else:
            self.send_latest(op, t, value)

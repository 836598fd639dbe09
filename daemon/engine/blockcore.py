"""The engine's per-block work. Everything here runs on JACK's process thread.

REAL-TIME RULES for this module (``EngineCore.process`` and what it calls):

* No buffers created per block: every array is allocated in ``__init__`` or
  ``set_block_size``; the arithmetic runs in the compiled kernels
  (``jackgen.dsp._kernels``, ``jackgen.bridge._ringc``) writing into those
  arrays. Small wrapper objects (slices, numpy scalars, the msgpack list of a
  bounded command) are freed at once by reference counting; nothing grows.
* No locks, no waiting, no I/O, no logging, no Redis/HTTP: the outside world is
  reached only through the shared-memory rings (bounded commands in, events out;
  a full event ring drops the event and counts it).
* No exceptions escape: the JACK driver catches everything, outputs silence for
  that block and counts ``callback_errors``.
* The cyclic GC is off while running (the driver freezes and disables it);
  nothing here creates reference cycles.

Why the hot path is a handful of C calls: the JACK thread sleeps between periods
and wakes to cold caches. The same block written as ~100 numpy calls measured
410 µs p50 / 1.8 ms p99 at 256 frames on the 2-core dev box (176 µs warm); the
kernels keep it to a few C calls. Per-track state changes (start, stop, underrun)
are rare and stay in Python.

One engine, two drivers: the JACK client (``jackgen.daemon.engine.driver``) and
:class:`OfflineDriver` (tests, later bounce) call the same ``process``.
"""

from __future__ import annotations

import math
import time

import numpy as np

from jackgen.bridge import layout as L
from jackgen.bridge import schema as S
from jackgen.bridge._ringc import ffi
from jackgen.bridge.schema import FRAME_MASK, frames_until
from jackgen.bridge._ringc import lib as ringlib
from jackgen.bridge.ring import AudioRing, MessageRing
from jackgen.dsp._kernels import ffi as kffi
from jackgen.dsp._kernels import lib as klib
from jackgen.daemon.engine.masterchain import MasterChain
from jackgen.dsp.master import MasterSection
from jackgen.dsp.mix import MAX_GAIN_DB, MIN_GAIN_DB, cc_to_gain_db, cc_to_pan, fade_curve, track_gains

CHANNELS = 2
TIMED_OPS = (S.CMD_GAIN, S.CMD_PAN, S.CMD_MUTE, S.CMD_SOLO)

# Per-track read mode for the batched ring read (bridge C helper jg_read_tracks).
MODE_IDLE = 0  # silent: the helper zeroes the block
MODE_BULK = 1  # steady playback: the helper reads the block
MODE_SPECIAL = 2  # starting, stopping or recovering: _pull_track does it in Python


def _fptr(arr: np.ndarray, ctype: str = "float *"):
    return kffi.cast(ctype, kffi.from_buffer(arr))


class EngineCore:
    """Mixer state and the per-block function.

    Not process thread: ``__init__``, ``set_block_size``, ``hello``. Process
    thread: ``process`` and everything it calls.
    """

    def __init__(
        self,
        rings: list[AudioRing],
        commands: MessageRing,
        events: MessageRing,
        sample_rate: int,
        block_size: int,
        *,
        max_commands_per_block: int = 64,
        fade_ms: float = 3.0,
        gain_smoothing_ms: float = 10.0,
        limiter_ceiling_db: float = -0.3,
        limiter_release_ms: float = 80.0,
        limiter_lookahead_ms: float = 1.5,
        master: dict | None = None,
        master_chain: MasterChain | None = None,
        meter_hz: float = 30.0,
        status_hz: float = 4.0,
    ) -> None:
        self.rings = rings
        self.n_tracks = T = len(rings)
        self.commands = commands
        self.events = events
        self.sample_rate = sample_rate
        self.max_commands_per_block = max_commands_per_block

        # Fader state and the gains it implies (float32, what the kernel reads).
        self.gain_db = np.zeros(T)
        self.pan = np.zeros(T)
        self.mute = np.zeros(T, dtype=bool)
        self.solo = np.zeros(T, dtype=bool)
        self.target = np.ones((T, CHANNELS), dtype=np.float32)
        self.cur = np.ones((T, CHANNELS), dtype=np.float32)  # gain at block start
        self._next = np.ones((T, CHANNELS), dtype=np.float32)  # gain at block end while ramping
        self.smooth_frames = max(1.0, gain_smoothing_ms * 1e-3 * sample_rate)
        self.ramp_left = np.zeros(T)  # frames of gain ramp still to go, per track
        self._frac = np.zeros(T)
        self._moving = False
        self._gains_dirty = False
        track_gains(self.gain_db, self.pan, self.mute, self.solo, out=self.target)
        self.cur[:] = self.target
        self._p_cur = _fptr(self.cur)
        self._p_next = _fptr(self._next)

        # Per-track stream state machine (plain lists of small ints).
        self.state = [S.TRACK_IDLE] * T
        self.want_epoch = [0] * T
        self.start_at = [0] * T
        self.resume = [False] * T
        self.stop_at = [0] * T
        self.fade_pos = [-1] * T  # >= 0 while a stop fade runs
        self.in_underrun = [False] * T
        self.mode = np.zeros(T, dtype=np.uint8)
        self._mode_py = [MODE_IDLE] * T
        self._n_special = 0
        self._p_mode = ffi.cast("uint8_t *", ffi.from_buffer(self.mode))
        self._ring_bases = ffi.new("uint8_t *[]", [r._base for r in rings])  # noqa: SLF001
        self.got = np.zeros(T, dtype=np.uint64)
        self._p_got = ffi.cast("uint64_t *", ffi.from_buffer(self.got))
        self.active = np.ones(T, dtype=np.uint8)  # the kernel mixes every track (idle ones are zeros)
        self._p_active = kffi.cast("uint8_t *", kffi.from_buffer(self.active))

        # MIDI: notes 36-51 trigger tracks 1-16 (any channel) unless remapped; CC7/CC10 on
        # channel N set track N's gain/pan. The driver fills midi_buf before process().
        self.note_to_track = [-1] * 128
        for i in range(min(T, 16)):
            self.note_to_track[36 + i] = i
        self.gate = [False] * T
        self.midi_cc = True
        self.midi_buf = np.zeros(S.MAX_MIDI_EVENTS_PER_BLOCK, dtype=np.uint64)
        self.midi_events = 0
        self.armed_epoch = [0] * T
        # Timed gain/pan/mute/solo (OSC bundles): [due_frame, command] in arrival order.
        self._timed: list[list] = []
        self.late_timed = 0
        # JACK clock at the start of this block (driver; for mapping timetags to frames).
        self.cycle_usecs = 0
        self.period_usecs = 0.0
        # Driver hook: () -> None or [bar, beat, tick, ticks_per_beat, beats_per_bar, bpm,
        # bbt_offset] for this cycle (JACK transport BBT); read only when a status goes out.
        self.transport_reader = None
        self.transport_control = None  # driver hook: (rolling: int) -> None, JACK transport start/stop

        self.fade_len = max(1, int(round(fade_ms * 1e-3 * sample_rate)))
        self.fade_out = fade_curve(self.fade_len, fade_in=False)
        self.fade_in = fade_curve(self.fade_len, fade_in=True)

        # Re-lock after skipped cycles (an xrun): the frame each block should start at, and
        # what was skipped to keep every playing stream on the frame clock.
        self._expect_frame = -1
        self.max_relock_frames = int(2 * sample_rate)  # a longer jump is a new clock, not a missed cycle
        self.skipped_cycles = 0
        self.skipped_frames = 0
        self.relock_short = 0  # frames a re-lock could not skip (the producer was behind)

        # Counters (read by the status event and the drivers).
        self.underruns = 0
        self.late_commands = 0
        self.bad_commands = 0
        self.blocks = 0
        self.xruns = 0  # set by the JACK driver's xrun callback
        self.callback_errors = 0  # set by the driver
        self.dsp_load = 0.0  # set by the driver
        self.cb_max_ns = 0  # driver: max callback time since the last status event
        self.cb_sum_ns = 0
        self.cb_count = 0

        # Mastering section (EQ, makeup gain, true-peak limiter): one kernel call per block.
        m = master or {}
        self.master = MasterSection(sample_rate, ceiling_db=limiter_ceiling_db, lookahead_ms=limiter_lookahead_ms,
                                    release_ms=limiter_release_ms, gain_db=float(m.get("gain_db", 0.0)),
                                    eq=m.get("eq") or [])
        self._ms = self.master.s
        self.master_chain = master_chain if master_chain is not None else MasterChain(sample_rate)
        self.limiter_blocks = 0

        self.meter_interval = max(1, int(sample_rate / meter_hz))
        self.status_interval = max(1, int(sample_rate / status_hz))
        self._since_meter = 0
        self._since_status = 0
        self.t_peak = np.zeros((T, CHANNELS), dtype=np.float32)
        self.t_sumsq = np.zeros((T, CHANNELS), dtype=np.float64)
        self.m_peak = np.zeros(CHANNELS, dtype=np.float32)
        self.m_sumsq = np.zeros(CHANNELS, dtype=np.float64)
        self._p_tpeak = _fptr(self.t_peak)
        self._p_tsumsq = _fptr(self.t_sumsq, "double *")
        self._p_mpeak = _fptr(self.m_peak)
        self._p_msumsq = _fptr(self.m_sumsq, "double *")
        self._meter_frames = 0

        self._quiet = False
        self.n = 0
        self._cap = 0
        self.set_block_size(block_size)

    # ------------------------------------------------------------------ setup
    def set_block_size(self, n: int) -> None:
        """Not process thread (JACK's buffer-size callback, or the offline driver).

        Grows the backing arrays if needed and rebuilds the views for ``n``-frame
        blocks. ``process`` calls it too if it sees a new size first; that path
        allocates once per size change, never per block.
        """
        T = self.n_tracks
        if n > self._cap:
            cap = max(n, 4096)
            self._tb_back = np.zeros(T * cap * CHANNELS, dtype=np.float32)
            self._out_back = np.zeros((T + 1) * CHANNELS * cap, dtype=np.float32)
            self._cap = cap
        # tb: (T, n, 2) interleaved blocks as read from the rings.
        self.tb = self._tb_back[: T * n * CHANNELS].reshape(T, n, CHANNELS)
        self._p_tb = ffi.cast("float *", ffi.from_buffer(self.tb))
        self._p_tb_k = _fptr(self.tb)
        self.tb_ptr = [self._p_tb + t * n * CHANNELS for t in range(T)]
        # out: (T + 1, 2, n) planar, gained tracks then master; rows go straight to ports.
        self.out = self._out_back[: (T + 1) * CHANNELS * n].reshape(T + 1, CHANNELS, n)
        self.track_out = self.out[:T]
        self.master_out = self.out[T]
        self._p_out = _fptr(self.out)
        self._p_master = _fptr(self.master_out)
        self.master.set_block_size(n)
        self.n = n

    def warm_up(self, blocks: int = 200) -> None:
        """Not process thread: run the block path before JACK activation.

        The first callbacks otherwise pay for first-use work (cold code paths,
        lazily built numpy/cffi internals) and arrive late: measured as a burst of
        ~27 xruns in the first 0.3 s after activation. Tracks are idle here, and
        commands and events are held back so nothing is consumed or announced.
        """
        saved_cmds = self.max_commands_per_block
        self.max_commands_per_block = 0
        self._quiet = True
        try:
            for i in range(blocks):
                self.process(self.n, i * self.n)
        finally:
            self.max_commands_per_block = saved_cmds
            self._quiet = False
            self.blocks = 0
            self._expect_frame = -1  # JACK's first cycle is not a jump from the warm-up's clock
            self.limiter_blocks = 0
            self.cb_max_ns = self.cb_sum_ns = self.cb_count = 0
            for a in (self.t_peak, self.t_sumsq, self.m_peak, self.m_sumsq):
                a.fill(0.0)
            self._meter_frames = self._since_meter = 0
            self._since_status = self.status_interval  # the first real block reports the clock at once

    def hello(self, pid: int) -> None:
        """Announce this engine (after a restart, control answers by replaying its state)."""
        self.events.put(S.pack(S.EVT_HELLO, pid, self.sample_rate, self.n, self.n_tracks))

    # ------------------------------------------------------------ process thread
    def process(self, n: int, frame_time: int, midi_count: int = 0) -> None:
        """Produce one block of ``n`` frames starting at JACK frame ``frame_time``.

        Process thread. ``midi_count`` short MIDI messages are waiting in
        ``midi_buf`` (offset << 24 | status << 16 | data1 << 8 | data2). Fills
        ``out``: ``track_out`` (T, 2, n), ``master_out`` (2, n).
        """
        if n != self.n:
            self.set_block_size(n)
        if frame_time != self._expect_frame and self._expect_frame >= 0:
            gap = frames_until(frame_time, self._expect_frame)
            if 0 < gap <= self.max_relock_frames:
                self._relock(gap, frame_time)
        self._expect_frame = (frame_time + n) & FRAME_MASK
        if self.max_commands_per_block and ringlib.jg_msg_pending(self.commands._base):  # noqa: SLF001
            self._drain_commands(frame_time, n)
        if self._timed:
            self._run_timed(frame_time, n)
        if midi_count:
            self._handle_midi(midi_count, frame_time)
        if self._gains_dirty:
            # once per block however many fader commands came in (a flood of 64
            # gain changes a block cost milliseconds when each recomputed all tracks)
            self._gains_dirty = False
            self._retarget()
        T = self.n_tracks
        short = ringlib.jg_read_tracks(self._ring_bases, self._p_mode, self._p_tb, T, n, self._p_got)
        if self._n_special:
            mode = self._mode_py
            for t in range(T):
                if mode[t] == MODE_SPECIAL:
                    self._pull_track(t, n, frame_time)
        if short:
            mode = self._mode_py
            got = self.got
            for t in range(T):
                if mode[t] == MODE_BULK and got[t] < n:
                    self._short_read(t, self.tb[t], 0, int(got[t]), n, frame_time)

        if self._moving:
            self._advance_gains(n)
            klib.jg_mix_block(self._p_tb_k, self._p_active, self._p_cur, self._p_next, T, n, self._p_out,
                              self._p_tpeak, self._p_tsumsq)
            np.copyto(self.cur, self._next)
        else:
            klib.jg_mix_block(self._p_tb_k, self._p_active, self._p_cur, self._p_cur, T, n, self._p_out,
                              self._p_tpeak, self._p_tsumsq)
        if self.master_chain.busy:
            self.master_chain.process(self.master_out, self.events)
        if klib.jg_master_block(self._ms, self._p_master, n):
            self.limiter_blocks += 1
        klib.jg_meter_rows(self._p_master, CHANNELS, n, self._p_mpeak, self._p_msumsq)
        self.blocks += 1
        self._meter(n, frame_time)

    def _set_mode(self, t: int, mode: int) -> None:
        old = self._mode_py[t]
        if old == mode:
            return
        self._n_special += (mode == MODE_SPECIAL) - (old == MODE_SPECIAL)
        self._mode_py[t] = mode
        self.mode[t] = mode

    def _drain_commands(self, frame_time: int, n: int) -> None:
        cmds = self.commands
        for _ in range(self.max_commands_per_block):
            view = cmds.get_view()
            if view is None:
                return
            try:
                c = S.unpack(view)
                if len(c) == 4 and c[0] in TIMED_OPS:
                    due = int(c[3])
                    ahead = frames_until(due, frame_time)
                    if ahead >= n:
                        self._schedule(c, frame_time)
                        continue
                    if due and ahead < 0:
                        self.late_timed += 1  # arrived after its frame: act at once, counted
                self._apply(c, frame_time)
            except Exception:  # malformed record: count it, report it, keep going
                self.bad_commands += 1
                self.events.put(S.pack(S.EVT_ERROR, S.ERR_BAD_COMMAND, -1, self.bad_commands))

    def _schedule(self, c: list, frame_time: int) -> None:
        if len(self._timed) >= S.MAX_TIMED_COMMANDS:
            self.events.put(S.pack(S.EVT_ERROR, S.ERR_TIMED_QUEUE_FULL, int(c[1]), len(self._timed)))
            self._apply(c, frame_time)  # better now than never
            return
        self._timed.append(c)

    def _run_timed(self, frame_time: int, n: int) -> None:
        """Apply queued timed commands whose frame falls in this block (in arrival order)."""
        i = 0
        timed = self._timed
        while i < len(timed):
            c = timed[i]
            if frames_until(int(c[3]), frame_time) < n:
                del timed[i]
                try:
                    self._apply(c, frame_time)
                    self.events.put(S.pack(S.EVT_APPLIED, c[0], c[1], frame_time))
                except Exception:
                    self.bad_commands += 1
            else:
                i += 1

    def _handle_midi(self, count: int, frame_time: int) -> None:
        """Notes trigger armed tracks at their exact frame; CC7/CC10 set gain/pan. Process thread."""
        buf = self.midi_buf
        self.midi_events += count
        for i in range(count):
            v = int(buf[i])
            offset = v >> 24
            status = (v >> 16) & 0xFF
            d1 = (v >> 8) & 0x7F
            d2 = v & 0x7F
            kind = status & 0xF0
            frame = (frame_time + offset) & FRAME_MASK
            self.events.put(S.pack(S.EVT_MIDI, frame, status, d1, d2))
            if kind == 0x90 and d2 > 0:
                t = self.note_to_track[d1]
                if t >= 0:
                    self.trigger(t, frame)
            elif kind == 0x80 or (kind == 0x90 and d2 == 0):
                t = self.note_to_track[d1]
                if t >= 0 and self.gate[t] and self.state[t] == S.TRACK_PLAYING:
                    self.stop_at[t] = frame
                    self.state[t] = S.TRACK_STOPPING
                    self.fade_pos[t] = -1
                    self._set_mode(t, MODE_SPECIAL)
            elif kind == 0xB0 and self.midi_cc:
                t = status & 0x0F
                if t < self.n_tracks and d1 == 7:
                    self.gain_db[t] = cc_to_gain_db(d2)
                    self._gains_dirty = True
                elif t < self.n_tracks and d1 == 10:
                    self.pan[t] = cc_to_pan(d2)
                    self._gains_dirty = True

    def trigger(self, t: int, frame: int) -> None:
        """Start track t's armed clip at ``frame`` (a note-on, or play without a file)."""
        if self.state[t] == S.TRACK_ARMED:
            self.want_epoch[t] = self.armed_epoch[t]
            self.start_at[t] = frame
            self.resume[t] = False
            self.state[t] = S.TRACK_PENDING
            self._set_mode(t, MODE_SPECIAL)
        # Not armed (already playing, or nothing loaded): control sees the note as an
        # EVT_MIDI and decides (restart, re-arm); the engine never waits for audio.

    def _apply(self, c: list, frame_time: int) -> None:
        op = c[0]
        if op == S.CMD_PING:
            self.events.put(S.pack(S.EVT_PONG, c[1], frame_time))
            return
        if op == S.CMD_STATUS:
            self._send_status(frame_time)
            return
        if op == S.CMD_TRANSPORT:
            if self.transport_control is not None:
                self.transport_control(int(c[1]))
            return
        if op == S.CMD_MIDI_CC:
            self.midi_cc = bool(c[1])
            return
        if op == S.CMD_MASTER_GAIN:
            g = float(c[1])
            if not math.isfinite(g):
                raise ValueError("master gain not finite")
            self.master.set_gain(min(MAX_GAIN_DB, max(MIN_GAIN_DB, g)))
            return
        if op == S.CMD_MASTER_EQ:
            self.master.set_band(int(c[1]), int(c[2]), float(c[3]), float(c[4]), float(c[5]))
            return
        if op == S.CMD_MASTER_CHAIN:
            self.master_chain.request(int(c[1]))
            return
        if op == S.CMD_MASTER_PARAM:
            self.master_chain.apply_param(int(c[1]), int(c[2]), str(c[3]), c[4])
            return
        if op == S.CMD_MASTER_BYPASS:
            self.master_chain.apply_bypass(int(c[1]), int(c[2]), bool(c[3]))
            return
        t = int(c[1])
        if not 0 <= t < (128 if op == S.CMD_MAP_NOTE else self.n_tracks):
            raise ValueError("track out of range")
        if op == S.CMD_GAIN:
            g = float(c[2])
            if not math.isfinite(g):
                raise ValueError("gain not finite")
            self.gain_db[t] = min(MAX_GAIN_DB, max(MIN_GAIN_DB, g))
            self._gains_dirty = True
        elif op == S.CMD_PAN:
            p = float(c[2])
            if not math.isfinite(p):
                raise ValueError("pan not finite")
            self.pan[t] = min(1.0, max(-1.0, p))
            self._gains_dirty = True
        elif op == S.CMD_MUTE:
            self.mute[t] = bool(c[2])
            self._gains_dirty = True
        elif op == S.CMD_SOLO:
            self.solo[t] = bool(c[2])
            self._gains_dirty = True  # solo changes every track's audibility
        elif op == S.CMD_PLAY:
            self.want_epoch[t] = int(c[2])
            at = int(c[3])
            self.start_at[t] = at
            self.resume[t] = bool(c[4])
            if at and frames_until(at, frame_time) < 0:
                self.late_commands += 1
            self.fade_pos[t] = -1
            self.in_underrun[t] = False
            self.state[t] = S.TRACK_PENDING
            self._set_mode(t, MODE_SPECIAL)
        elif op == S.CMD_ARM:
            epoch = int(c[2])
            self.armed_epoch[t] = epoch
            if self.state[t] in (S.TRACK_IDLE, S.TRACK_ARMED):
                self.state[t] = S.TRACK_ARMED
                self.want_epoch[t] = epoch
                self._set_mode(t, MODE_IDLE)
                self._track_event(t, S.TRACK_ARMED, frame_time)
        elif op == S.CMD_MAP_NOTE:
            note, track = t, int(c[2])  # c[1] is the note here
            self.note_to_track[note] = track if 0 <= track < self.n_tracks else -1
        elif op == S.CMD_GATE:
            self.gate[t] = bool(c[2])
        elif op == S.CMD_STOP:
            at = int(c[2])
            if self.state[t] in (S.TRACK_PENDING, S.TRACK_ARMED):
                self._go_idle(t, S.TRACK_IDLE, frame_time)
            elif self.state[t] == S.TRACK_PLAYING:
                self.stop_at[t] = at
                self.state[t] = S.TRACK_STOPPING
                self.fade_pos[t] = -1
                self._set_mode(t, MODE_SPECIAL)
        else:
            raise ValueError("unknown opcode")

    def _retarget(self) -> None:
        track_gains(self.gain_db, self.pan, self.mute, self.solo, out=self._next)
        changed = np.any(self._next != self.target, axis=1)
        self.target[:] = self._next
        self._next[:] = self.cur
        self.ramp_left[changed] = self.smooth_frames
        self._moving = bool((self.ramp_left > 0).any())

    def _advance_gains(self, n: int) -> None:
        """Set ``_next`` (gain at the end of this block) one block along a linear ramp."""
        np.maximum(self.ramp_left, n, out=self._frac)
        np.divide(n, self._frac, out=self._frac)  # share of the remaining distance covered now
        np.subtract(self.target, self.cur, out=self._next)
        self._next *= self._frac[:, None]
        self._next += self.cur
        np.subtract(self.ramp_left, n, out=self.ramp_left)
        np.maximum(self.ramp_left, 0.0, out=self.ramp_left)
        done = self.ramp_left <= 0
        np.copyto(self._next, self.target, where=done[:, None])  # land exactly on target
        self._moving = bool(not done.all())

    def _relock(self, gap: int, frame_time: int) -> None:
        """JACK skipped ``gap`` frames before this block (an xrun: our cycles were not run).
        Every stream that plays drops the frames it should have played meanwhile, so tracks
        started before and after stay sample-aligned with each other and the tempo grid.
        Process thread."""
        self.skipped_cycles += 1
        self.skipped_frames += gap
        moved = 0
        for t in range(self.n_tracks):
            if self.state[t] in (S.TRACK_PLAYING, S.TRACK_STOPPING):
                self.relock_short += self._skip(t, gap)
                moved += 1
        self.events.put(S.pack(S.EVT_RELOCK, frame_time, gap, moved))

    def _skip(self, t: int, frames: int) -> int:
        """Drop up to ``frames`` of track t's ring; returns how many were not there. Process thread."""
        ring = self.rings[t]
        k = min(frames, ring.available())
        if k > 0:
            ring.skip_to(ring.read_count + k)
        return frames - k

    def _go_idle(self, t: int, event_state: int, frame: int) -> None:
        self.state[t] = S.TRACK_IDLE
        self.fade_pos[t] = -1
        self.in_underrun[t] = False
        self._set_mode(t, MODE_IDLE)
        self._track_event(t, event_state, frame)

    def _pull_track(self, t: int, n: int, frame_time: int) -> None:
        """Fill ``tb[t]`` for a track that is starting, stopping or recovering. Process thread."""
        ring = self.rings[t]
        dst = self.tb[t]
        st = self.state[t]
        offset = 0
        if st == S.TRACK_PENDING:
            word = ring.stream_word()
            if (word >> 8) != self.want_epoch[t]:
                dst.fill(0.0)  # the producer has not begun this stream yet
                return
            at = self.start_at[t]
            offset = max(0, frames_until(at, frame_time)) if at else 0
            if offset >= n:
                dst.fill(0.0)
                return
            if not self.resume[t]:
                ring.skip_to(ring.stream_start())
                late = -frames_until(at, frame_time) if at else 0
                if 0 < late <= self.max_relock_frames:
                    # its start frame went by (a skipped cycle, a late command): start at the
                    # frame it would be at, not at its first frame, so it stays on the grid
                    self.skipped_frames += late
                    self.relock_short += self._skip(t, late)
            self.state[t] = st = S.TRACK_PLAYING
            self._track_event(t, S.TRACK_PLAYING, frame_time + offset)
            if offset:
                dst[:offset].fill(0.0)

        want = n - offset
        got = ring.read_into(self.tb_ptr[t] + offset * CHANNELS, want)
        if got < want:
            dst[offset + got :].fill(0.0)
            if self._short_read(t, dst, offset, got, want, frame_time):
                return
        elif self.in_underrun[t]:
            m = min(self.fade_len, got)
            dst[offset : offset + m] *= self.fade_in[:m, None]
            self.in_underrun[t] = False
            self._track_event(t, S.TRACK_RECOVERED, frame_time + offset)

        if st == S.TRACK_STOPPING:
            self._stop_fade(t, dst, n, frame_time)
        elif self.state[t] == S.TRACK_PLAYING and not self.in_underrun[t]:
            self._set_mode(t, MODE_BULK)

    def _short_read(self, t: int, dst: np.ndarray, offset: int, got: int, want: int, frame_time: int) -> bool:
        """The ring gave ``got`` < ``want`` frames at ``dst[offset:]`` (rest already zero).

        Either the stream ended (track goes idle; returns True) or it ran dry
        (underrun: fade what we have, count it once per dry spell).
        """
        ring = self.rings[t]
        end = offset + got
        word = ring.stream_word()
        sstate = word & 0xFF
        if (word >> 8) == self.want_epoch[t] and sstate in (L.STATE_EOS, L.STATE_ABORTED) and ring.available() == 0:
            if sstate == L.STATE_ABORTED:
                self._fade_tail(dst, offset, end)
            self._go_idle(t, S.TRACK_ENDED if sstate == L.STATE_EOS else S.TRACK_ABORTED, frame_time + end)
            return True
        self._fade_tail(dst, offset, end)
        if not self.in_underrun[t]:
            self.in_underrun[t] = True
            self.underruns += 1
            self._track_event(t, S.TRACK_UNDERRUN, frame_time + end)
            if self.state[t] == S.TRACK_PLAYING:
                self._set_mode(t, MODE_SPECIAL)  # recovery needs a fade-in
        return False

    def _fade_tail(self, dst: np.ndarray, start: int, end: int) -> None:
        m = min(self.fade_len, end - start)
        if m > 0:
            dst[end - m : end] *= self.fade_out[self.fade_len - m :, None]

    def _stop_fade(self, t: int, dst: np.ndarray, n: int, frame_time: int) -> None:
        pos = self.fade_pos[t]
        k = 0
        if pos < 0:
            at = self.stop_at[t]
            k = max(0, frames_until(at, frame_time)) if at else 0
            if k >= n:
                return  # the stop lands in a later block
            pos = 0
        m = min(n - k, self.fade_len - pos)
        dst[k : k + m] *= self.fade_out[pos : pos + m, None]
        dst[k + m :].fill(0.0)
        pos += m
        if pos >= self.fade_len:
            ring = self.rings[t]
            ring.skip_to(ring.write_count)  # discard the rest; a blocked producer can finish
            self._go_idle(t, S.TRACK_IDLE, frame_time + k + m)
        else:
            self.fade_pos[t] = pos

    def _track_event(self, t: int, state: int, frame: int) -> None:
        self.events.put(S.pack(S.EVT_TRACK, t, state, self.want_epoch[t], frame & FRAME_MASK))

    def _meter(self, n: int, frame_time: int) -> None:
        if self._quiet:
            return
        self._meter_frames += n
        self._since_meter += n
        self._since_status += n
        if self._since_meter >= self.meter_interval:
            self._since_meter = 0
            inv = 1.0 / self._meter_frames
            self.events.put(
                S.pack(
                    S.EVT_METERS,
                    frame_time,
                    self.t_peak.ravel().tolist(),
                    np.sqrt(self.t_sumsq * inv).ravel().tolist(),
                    self.m_peak.tolist(),
                    np.sqrt(self.m_sumsq * inv).tolist(),
                )
            )
            self.t_peak.fill(0.0)
            self.t_sumsq.fill(0.0)
            self.m_peak.fill(0.0)
            self.m_sumsq.fill(0.0)
            self._meter_frames = 0
        if self._since_status >= self.status_interval:
            self._since_status = 0
            self._send_status(frame_time)

    def _bbt(self, frame_time: int) -> list | None:
        if self.transport_reader is None:
            return None
        bbt = self.transport_reader()
        if bbt is None:
            return None
        return [(frame_time + int(bbt[6])) & FRAME_MASK, *bbt[:6]]

    def _send_status(self, frame_time: int) -> None:
        # 19 fields at most: a 20-element argument tuple left one live allocation per status
        # behind (measured by test_no_allocation_growth_over_100k_callbacks, CPython 3.11)
        mean_us = (self.cb_sum_ns / self.cb_count / 1000.0) if self.cb_count else 0.0
        self.events.put(
            S.pack(
                S.EVT_STATUS,
                frame_time,
                self.xruns,
                self.underruns,
                self.dsp_load,
                self.cb_max_ns / 1000.0,
                mean_us,
                self.blocks,
                self.late_commands,
                self.n,
                self.sample_rate,
                self.events.dropped,
                self.callback_errors,
                self.cycle_usecs,
                self.period_usecs,
                self.midi_events,
                self.late_timed,
                self._bbt(frame_time),
                self.skipped_frames,
            )
        )
        self.cb_max_ns = 0
        self.cb_sum_ns = 0
        self.cb_count = 0


class OfflineDriver:
    """Runs an :class:`EngineCore` without JACK: tests today, bounce later.

    The frame clock starts at ``start_frame`` and advances by the block size.
    """

    def __init__(self, core: EngineCore, start_frame: int = 0) -> None:
        self.core = core
        self.frame = start_frame

    def run_block(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        t0 = time.perf_counter_ns()
        self.core.process(n, self.frame)
        dt = time.perf_counter_ns() - t0
        self.core.cb_count += 1
        self.core.cb_sum_ns += dt
        if dt > self.core.cb_max_ns:
            self.core.cb_max_ns = dt
        self.frame = (self.frame + n) & FRAME_MASK  # the same 32-bit clock JACK gives the engine
        return self.core.track_out, self.core.master_out

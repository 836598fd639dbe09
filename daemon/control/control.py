"""The control process: session state, the engine link, the feeder and (in ``jackgen run``)
supervision of the engine. Non-real-time, asyncio.

It talks to the engine only through the shared-memory rings: commands out,
events in. Every state change is persisted to ``sessions/<name>/session.json``
(atomic write) and replayed into a (re)started engine when it says hello, so an
engine crash costs a restart, not the mix.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import shutil
import signal
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import soundfile as sf

from jackgen.bridge import schema as S
from jackgen.bridge.crumb import crumb_file, open_crumb
from jackgen.bridge.instance import N_TRACKS, InstanceRings
from jackgen.bridge.ring import InstanceLock, RingError
from jackgen.daemon.control.clock import EngineClock, TempoMap
from jackgen.daemon.config import Config, check_session_name
from jackgen.daemon.control.connections import ConnectionKeeper
from jackgen.common.errors import JackgenError, Unavailable, check_finite, check_track
from jackgen.daemon.jobs.board import JobBoard
from jackgen.daemon.engine.masterchain import chain_file
from jackgen.daemon.control.midimap import ACTIONS, MidiMap, MidiMapError, decode
from jackgen.generators.job import BACKENDS, TAKE_RE
from jackgen.common.link import atomic_write_json
from jackgen.dsp.master import EQ_BANDS, EQ_TYPES, BandError, check_band, master_latency
from jackgen.plugins.host import PluginError
from jackgen.dsp.mix import MAX_GAIN_DB, MIN_GAIN_DB, cc_to_gain_db, cc_to_pan

log = logging.getLogger("jackgen.control")

SESSION_VERSION = 1
EVENT_POLL_S = 0.005


@dataclass
class TrackState:
    gain_db: float = 0.0
    pan: float = 0.0
    mute: bool = False
    solo: bool = False
    armed: str | None = None  # clip path armed for triggers
    chain: list = field(default_factory=list)  # plugin states (dsp.plugins.Plugin.state()), in order
    armed_epoch: int = 0  # the armed clip's stream, once it waits in the ring
    # runtime (not persisted)
    state: str = "idle"
    epoch: int = 0
    stream_id: str | None = None
    source: str | None = None
    started_frame: int | None = None
    ended_frame: int | None = None
    error: str | None = None

    def persisted(self) -> dict:
        return {"gain_db": self.gain_db, "pan": self.pan, "mute": self.mute, "solo": self.solo, "armed": self.armed,
                "chain": self.chain}


@dataclass
class Stream:
    id: str
    track: int
    epoch: int
    path: str
    primed: asyncio.Future = field(repr=False)
    done: bool = False
    producer: Any = None  # None: the feeder; else the WorkerLink of a generator
    finished: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def end(self) -> None:
        self.done = True
        self.finished.set()


class ChildProcess:
    """A supervised child (engine or feeder): restarted with backoff when it dies."""

    def __init__(self, role: str, argv: list[str], cfg: Config, on_start=None, on_exit=None,
                 stdin: bool = False, on_line=None, no_restart_codes: tuple[int, ...] = ()) -> None:
        self.role = role
        self.argv = argv
        self.cfg = cfg
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self.on_start = on_start
        self.on_exit = on_exit
        self.on_line = on_line
        self.want_stdin = stdin
        self._task: asyncio.Task | None = None
        self._stopping = False
        self.last_exit: int | None = None
        self.no_restart_codes = no_restart_codes
        self.disabled = False  # exited with a code that says restarting cannot help

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.returncode is None else None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"supervise-{self.role}")

    async def _loop(self) -> None:
        delay = self.cfg.supervisor.restart_delay_s
        while not self._stopping:
            started = time.monotonic()
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.PIPE if self.want_stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if self.on_line else None,
                start_new_session=False,
            )
            log.info("%s started (pid %d)", self.role, self.proc.pid)
            if self.on_start:
                await self.on_start(self)
            if self.on_line:
                assert self.proc.stdout is not None
                async for raw in self.proc.stdout:
                    with contextlib.suppress(Exception):
                        await self.on_line(raw.decode(errors="replace").strip())
            code = await self.proc.wait()
            self.last_exit = code
            if self._stopping:
                break
            if code in self.no_restart_codes:
                self.disabled = True
                log.error("%s exited with code %s and will not be restarted", self.role, code)
                if self.on_exit:
                    await self.on_exit(self, code)
                break
            self.restarts += 1
            log.error("%s exited with code %s; restarting in %.1f s", self.role, code, delay)
            if self.on_exit:
                await self.on_exit(self, code)
            await asyncio.sleep(delay)
            # back off only while it keeps dying quickly
            if time.monotonic() - started < 5.0:
                delay = min(max(delay * 2, 0.1), self.cfg.supervisor.max_restart_delay_s)
            else:
                delay = self.cfg.supervisor.restart_delay_s

    async def send(self, msg: dict) -> None:
        if not self.proc or self.proc.returncode is not None or self.proc.stdin is None:
            raise Unavailable(f"the {self.role} is not running (it is being restarted); try again in a moment")
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        await self.proc.stdin.drain()

    async def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping = True
        p = self.proc
        if p and p.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(p.wait(), timeout_s)
            except asyncio.TimeoutError:
                log.warning("%s did not stop within %.0f s; killing it", self.role, timeout_s)
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                await p.wait()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


def self_argv(*args: str) -> list[str]:
    """Command line that runs a jackgen subcommand with this interpreter."""
    return [sys.executable, "-m", "jackgen.daemon.cli", *args]


class Control:
    def __init__(self, cfg: Config, config_path: str | None = None, supervise_engine: bool = True,
                 session: str | None = None) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.supervise_engine = supervise_engine
        self.session = session or cfg.control.session
        self.session_dir = cfg.session_dir(self.session)
        self.tracks = [TrackState() for _ in range(N_TRACKS)]
        self.master = default_master()
        self._master_lock = asyncio.Lock()
        self._master_gen = 0
        self._master_waits: dict[int, asyncio.Future] = {}
        self.master_chain_latency = 0
        self.crumbs: dict = {}  # role -> shared words naming the plugin a process is inside (bridge/crumb.py)
        self.tempo = TempoMap(cfg.control.tempo_bpm, cfg.control.beats_per_bar)
        self.clock = EngineClock()
        self.tempo_source = "jackgen"  # or "jack transport" while a timebase master rolls
        self.engine_status: dict[str, Any] = {}
        self._status_rx_mono = 0.0
        self.engine_pid: int | None = None
        self.engine_hellos = 0
        self._restored_hellos = 0  # hellos whose connections have been restored
        self.meters: dict[str, Any] = {}
        self.streams: dict[int, Stream] = {}
        self._pongs: dict[int, asyncio.Future] = {}
        self._ping_token = 0
        self.lock: InstanceLock | None = None
        self.rings: InstanceRings | None = None
        self.engine: ChildProcess | None = None
        self.feeder: ChildProcess | None = None
        self.jobs: JobBoard | None = None
        self._tasks: list[asyncio.Task] = []
        self.started_mono = time.monotonic()
        self.osc = None
        self.midimap = MidiMap()
        self._learn: asyncio.Future | None = None
        self.midi_inputs = None
        self.midi_log: list[dict] = []  # the last few MIDI events seen (status, learn feedback)
        self._saver: asyncio.Task | None = None
        self._dirty = asyncio.Event()
        self.connections = ConnectionKeeper(cfg.jack.client_name, cfg.jack_server,
                                            self.session_dir / "connections.json")

    # ------------------------------------------------------------ lifecycle
    def open_rings(self) -> None:
        self.lock = InstanceLock(self.cfg.instance)
        self.lock.acquire()
        stale = self.lock.reclaim_stale()
        if stale:
            log.warning("reclaimed %d stale shared-memory segments from a previous run: %s", len(stale),
                        ", ".join(stale[:4]) + (" …" if len(stale) > 4 else ""))
        frames = int(self.cfg.engine.ring_seconds * 48000)
        # before the rings: a process that finds them finds its crash crumb too (bridge/crumb.py)
        self.crumbs = {role: open_crumb(self.cfg.instance, role, 1 if role == "engine" else N_TRACKS)
                       for role in CRUMB_ROLES}
        self.rings = InstanceRings.create(self.cfg.instance, frames)

    def load_session(self) -> None:
        try:
            self.midimap = MidiMap.load(self.session_dir / "midi_map.json")
        except MidiMapError as e:
            log.error("%s; using the default mapping", e)
            self.midimap = MidiMap()
        path = self.session_dir / "session.json"
        if not path.exists():
            self.save_session()
            return
        try:
            data = json.loads(path.read_text())
            for t, d in enumerate(data.get("tracks", [])[:N_TRACKS]):
                tr = self.tracks[t]
                tr.gain_db = float(d.get("gain_db", 0.0))
                tr.pan = float(d.get("pan", 0.0))
                tr.mute = bool(d.get("mute", False))
                tr.solo = bool(d.get("solo", False))
                tr.armed = d.get("armed")
                tr.chain = [c for c in d.get("chain") or [] if isinstance(c, dict) and c.get("plugin")]
            self.master = load_master(data.get("master"))
            self.tempo.bpm = float(data.get("tempo_bpm", self.tempo.bpm))
            self.tempo.beats_per_bar = int(data.get("beats_per_bar", self.tempo.beats_per_bar))
            log.info("session '%s' loaded from %s", self.session, path)
        except (ValueError, TypeError, AttributeError) as e:
            backup = path.with_suffix(f".broken-{int(time.time())}.json")
            shutil.copy(path, backup)
            log.error("session file %s is unreadable (%s); kept a copy at %s and started fresh", path, e, backup)

    def save_session(self) -> None:
        """Mark the session changed; a background task writes it at most every 0.5 s.

        Faders move hundreds of times a second under MIDI/OSC automation; an fsync
        per move made control the bottleneck (~850 OSC messages/s). At most half a
        second of changes is at risk in a crash; shutdown always writes.
        """
        if self._saver is None:
            self.write_session()
        else:
            self._dirty.set()

    async def _save_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                self.write_session()
            except OSError as e:
                log.error("cannot write %s: %s", self.session_dir / "session.json", e)
            await asyncio.sleep(0.5)

    def write_session(self) -> None:
        atomic_write_json(
            self.session_dir / "session.json",
            {
                "version": SESSION_VERSION,
                "name": self.session,
                "tempo_bpm": self.tempo.bpm,
                "beats_per_bar": self.tempo.beats_per_bar,
                "tracks": [t.persisted() for t in self.tracks],
                "master": self.master,
            },
        )

    async def start(self) -> None:
        self.open_rings()
        self.load_session()
        cfg_args = ["--config", self.config_path] if self.config_path else []
        inst = ["--instance", self.cfg.instance]
        self._tasks.append(asyncio.create_task(self._event_loop(), name="engine-events"))
        self._tasks.append(asyncio.create_task(self._connections_loop(), name="jack-connections"))
        self._saver = asyncio.create_task(self._save_loop(), name="session-saver")
        self._tasks.append(self._saver)
        if self.cfg.control.osc_port:
            from jackgen.daemon.frontends.osc import OscControl

            self.osc = OscControl(self)
            try:
                await self.osc.start(self.cfg.control.osc_host, self.cfg.control.osc_port)
            except OSError as e:
                raise RingError(f"cannot listen for OSC on {self.cfg.control.osc_host}:{self.cfg.control.osc_port}: "
                                f"{e.strerror} (another jackgen? set control.osc_port)") from None
            log.info("OSC on udp+tcp %s:%d", self.cfg.control.osc_host, self.cfg.control.osc_port)
        from jackgen.daemon.control.midiin import MidiInputs

        cc = self.cfg.control
        self.midi_inputs = MidiInputs(cc.midi_api, cc.midi_inputs, cc.midi_exclude, self.on_midi)
        self.midi_inputs.start()
        self.feeder = ChildProcess("feeder", self_argv("feeder", *inst), self.cfg, stdin=True,
                                   on_line=self._on_feeder_line, on_exit=self._on_feeder_exit)
        self.feeder.start()
        self.jobs = JobBoard(self)
        self.jobs.start()
        if self.supervise_engine:
            self.engine = ChildProcess("engine", self_argv("engine", *cfg_args, *inst), self.cfg,
                                       on_exit=self._on_engine_exit)
            self.engine.start()

    async def stop(self) -> None:
        if self.osc:
            await self.osc.stop()
        if self.midi_inputs:
            self.midi_inputs.stop()
        try:
            self.write_session()
        except OSError as e:
            log.error("cannot write the session on shutdown: %s", e)
        if self.jobs:
            await self.jobs.stop()
        for child in (self.engine, self.feeder):
            if child:
                await child.stop()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self.connections.close()
        if self.rings:
            self.rings.close(unlink=True)
        for path in (*(crumb_file(self.cfg.instance, r) for r in CRUMB_ROLES), chain_file(self.cfg.instance)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if self.lock:
            self.lock.release()

    # ------------------------------------------------------------ engine link
    def send(self, *cmd: object) -> None:
        assert self.rings is not None
        if not self.rings.commands.put(S.pack(*cmd)):
            raise Unavailable("the engine is not taking commands (command ring full): is it running?")

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
            self.clock = EngineClock(st["frame_time"], st.get("cycle_usecs", 0), st.get("period_usecs", 0.0),
                                     st["block_size"], st["sample_rate"], self._jack_to_frames())
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
                tr.started_frame = frame
            if state in (S.TRACK_ENDED, S.TRACK_ABORTED, S.TRACK_IDLE):
                tr.ended_frame = frame
                self._finish_stream(t)
                if tr.armed:  # the clip played (or was stopped): get it ready for the next trigger
                    tr.armed_epoch = 0
                    self._spawn(self._arm(t))
            if state == S.TRACK_UNDERRUN:
                log.warning("track %d ran dry at frame %d (underrun)", t + 1, frame)
            tr.state = name
        elif op == S.EVT_HELLO:
            _, pid, rate, block, _ntracks = e
            self.engine_pid = pid
            self.engine_hellos += 1
            self.engine_status.update({"sample_rate": rate, "block_size": block})
            self._status_rx_mono = time.monotonic()
            log.info("engine %d says hello (%d Hz, %d frames); restoring state", pid, rate, block)
            self.check_crumb("engine", self.engine.last_exit if self.engine else None)
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
            _, _frame, status, d1, d2 = e
            self.on_midi(status, d1, d2, "jack:midi_in")
        elif op == S.EVT_ERROR:
            log.error("engine reported error code %s (track %s, detail %s)", e[1], e[2], e[3])

    async def _connections_loop(self) -> None:
        """Remember our ports' JACK connections (every 2 s); after each hello, restore them first,
        so a fresh engine's empty ports never overwrite the snapshot."""
        while True:
            pending = self._restored_hellos != self.engine_hellos
            await asyncio.sleep(0.25 if pending else 2.0)
            if not self.engine_alive():
                continue
            try:
                if self._restored_hellos != self.engine_hellos:
                    self._restored_hellos = self.engine_hellos
                    await asyncio.to_thread(self.connections.restore)
                else:
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

    async def _on_engine_exit(self, child: ChildProcess, code: int) -> None:
        self.engine_status = {}
        self.engine_pid = None
        self.master_chain_latency = 0
        for fut in self._master_waits.values():
            if not fut.done():
                fut.set_result((False, 0, f"the engine stopped (exit code {code})"))

    async def sync(self, timeout_s: float = 2.0) -> int:
        """Wait until the engine has applied every command sent so far; returns its frame time."""
        self._ping_token += 1
        token = self._ping_token
        fut = asyncio.get_running_loop().create_future()
        self._pongs[token] = fut
        self.send(S.CMD_PING, token)
        try:
            return await asyncio.wait_for(fut, timeout_s)
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
            raise JackgenError("'at' must be now, beat, bar or a frame number")
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
        raise JackgenError(f"'at' must be now, beat, bar or a frame number, got {at!r}")

    def _jack_to_frames(self):
        client = self.connections._client  # noqa: SLF001 (only if already open: never blocks here)
        if client is None:
            return None
        from jackgen.daemon.engine.jacktime import time_to_frames

        return lambda usecs, c=client: time_to_frames(c, usecs)

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

    # ------------------------------------------------------------ feeder link
    async def _on_feeder_line(self, line: str) -> None:
        if not line:
            return
        msg = json.loads(line)
        ev = msg.get("event")
        track = msg.get("track")
        stream = self.streams.get(track) if track is not None else None
        if stream is None or stream.epoch != msg.get("epoch") or stream.producer is not None:
            if ev == "error" and track is None:
                log.error("feeder: %s", msg.get("message"))
            return
        if ev == "primed" and not stream.primed.done():
            stream.primed.set_result(msg.get("frames", 0))
        elif ev == "error":
            self.tracks[track].error = msg.get("message")
            log.error("streaming %s into track %d failed: %s", stream.path, track + 1, msg.get("message"))
            if not stream.primed.done():
                stream.primed.set_exception(JackgenError(f"cannot stream {stream.path}: {msg.get('message')}"))
        if ev in ("eos", "cancelled", "error"):
            stream.end()
        if ev in ("eos", "cancelled"):
            if not stream.primed.done():
                stream.primed.set_result(msg.get("frames", 0))

    async def _on_feeder_exit(self, child: ChildProcess, code: int) -> None:
        """The feeder died: once it is back, resume every unfinished stream where it stopped
        (without a plugin it died in)."""
        self.check_crumb("feeder", code)
        pending = [s for s in self.streams.values() if not s.done and s.producer is None]
        if not pending:
            return
        asyncio.create_task(self._resume_streams(pending))

    async def _resume_streams(self, pending: list[Stream]) -> None:
        assert self.rings is not None and self.feeder is not None
        for _ in range(100):
            if self.feeder.pid:
                break
            await asyncio.sleep(0.1)
        for s in pending:
            if self.streams.get(s.track) is not s:
                continue
            ring = self.rings.tracks[s.track]
            delivered = ring.write_count - ring.stream_start()
            log.warning("feeder restarted: resuming %s on track %d at frame %d", s.path, s.track + 1, delivered)
            with contextlib.suppress(JackgenError):
                await self.feeder.send({"op": "stream", "id": s.id, "track": s.track, "epoch": s.epoch,
                                        "path": s.path, "rate": self.sample_rate, "prefill_frames": 0,
                                        "resume_from": delivered, **self.chain_request(s.track)})

    def _finish_stream(self, t: int) -> None:
        s = self.streams.get(t)
        if s:
            s.done = True  # the engine is done with it; the producer reports its own end

    # ------------------------------------------------------------ plugin chains
    def chain_request(self, t: int) -> dict:
        """What a producer needs to run track t's chain (nothing when it has none)."""
        live = _live(self.tracks[t].chain)
        if not live:
            return {}
        lead = int(self.cfg.plugins.lead_ms * 1e-3 * (self.sample_rate or 48000))
        return {"chain": live, "lead_frames": lead, "vst3_dirs": list(self.cfg.plugins.vst3_dirs)}

    def _chain_target(self, track: object) -> tuple[int | None, list, str]:
        """(track index or None for the master, its chain list, how messages name it)."""
        if isinstance(track, str) and track.lower() == "master":
            return None, self.master["chain"], "the master"
        t = check_track(track)
        return t, self.tracks[t].chain, f"track {t + 1}"

    def _chain_index(self, track: object, index: object) -> tuple[int | None, list, int]:
        t, chain, label = self._chain_target(track)
        n = len(chain)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
            raise JackgenError(f"{label} has no plugin {index!r} in its chain: it has {n}"
                               + (f" (0…{n - 1})" if n else ""), status=404 if isinstance(index, int) else 400)
        return t, chain, index

    async def _push_chain_change(self, t: int | None, change: dict) -> None:
        """Hand a change to whatever runs that chain now: the engine for the master, else whatever
        feeds track t (later streams get the chain with them)."""
        if t is None:
            await self._push_master_change(change)
            return
        s = self.streams.get(t)
        if s is None or s.finished.is_set():
            return
        chain = self.tracks[t].chain  # the producer runs it without failed plugins: its indices skip them
        if change["kind"] == "chain":
            change = {**change, "chain": _live(chain)}
        else:
            j = _live_index(chain, change["index"])
            if j is None:
                return
            change = {**change, "index": j}
        target = self.feeder if s.producer is None else s.producer
        if target is not None:
            with contextlib.suppress(JackgenError):
                await target.send({"op": "chain", "track": t, "change": change})

    async def chain_add(self, track: object, plugin: object, params: object = None, index: object = None) -> dict:
        from jackgen.plugins.host import PluginError
        from jackgen.plugins.isolate import instantiate_isolated

        t, chain, label = self._chain_target(track)
        if not isinstance(plugin, str) or not plugin or len(plugin) > 4096 or "\0" in plugin:
            raise JackgenError("plugin must be a built-in name (Compressor, Reverb, …), a VST3 name or a .vst3 path")
        if params is not None and not isinstance(params, dict):
            raise JackgenError("params must be an object of parameter name -> value")
        if len(chain) >= self.cfg.plugins.max_per_chain:
            raise JackgenError(f"{label} already has {len(chain)} plugins (plugins.max_per_chain)")
        try:  # loaded in a child process: a plugin that crashes or hangs cannot take control with it
            info = await asyncio.to_thread(instantiate_isolated, plugin, params or {}, self.cfg.plugins.vst3_dirs,
                                           self.cfg.plugins.scan_timeout_s)
        except PluginError as e:
            raise JackgenError(str(e)) from None
        state = {**info["state"], "param_info": info["params"], "dual_mono": info["dual_mono"],
                 "latency_frames": info["latency_frames"]}
        at = len(chain) if index is None else max(0, min(int(index), len(chain)))
        async with self._chain_edit(t, chain):
            chain.insert(at, state)
            await self._push_chain_change(t, {"kind": "chain", "chain": chain})
        log.info("%s: %s added to the chain at %d", label, state["name"], at)
        return {"track": _track_id(t), "index": at, "chain": self.chain_list(_track_id(t))["chain"]}

    async def chain_remove(self, track: object, index: object) -> dict:
        t, chain, i = self._chain_index(track, index)
        async with self._chain_edit(t, chain):
            removed = chain.pop(i)
            await self._push_chain_change(t, {"kind": "chain", "chain": chain})
        return {"track": _track_id(t), "removed": removed["name"], "chain": self.chain_list(_track_id(t))["chain"]}

    async def chain_move(self, track: object, index: object, to: object) -> dict:
        t, chain, i = self._chain_index(track, index)
        if isinstance(to, bool) or not isinstance(to, int):
            raise JackgenError("to must be a chain position (int)")
        async with self._chain_edit(t, chain):
            chain.insert(max(0, min(to, len(chain) - 1)), chain.pop(i))
            await self._push_chain_change(t, {"kind": "chain", "chain": chain})
        return self.chain_list(_track_id(t))

    async def chain_bypass(self, track: object, index: object, on: object, at_frame: int | None = None) -> dict:
        t, chain, i = self._chain_index(track, index)
        flag = parse_on_off(on, "bypass")
        chain[i]["bypass"] = flag
        self.save_session()
        await self._push_chain_change(t, {"kind": "bypass", "index": i, "on": flag, **self._stream_at(t, at_frame)})
        return {"track": _track_id(t), "index": i, "bypass": flag}

    async def chain_param(self, track: object, index: object, name: object, value: object,
                          at_frame: int | None = None) -> dict:
        from jackgen.plugins.host import PluginError

        t, chain, i = self._chain_index(track, index)
        entry = chain[i]
        try:
            value = self._chain_param_spec(entry, name).check(entry["name"], value)
        except PluginError as e:
            raise JackgenError(str(e)) from None
        entry.setdefault("params", {})[name] = value
        self.save_session()
        await self._push_chain_change(t, {"kind": "param", "index": i, "name": name, "value": value,
                                          **self._stream_at(t, at_frame)})
        return {"track": _track_id(t), "index": i, "param": name, "value": value}

    def _chain_param_spec(self, entry: dict, name: object):
        """The parameter's range, unit and choices as the plugin reported them when it was added."""
        from jackgen.plugins.host import Param

        info = {p["name"]: p for p in entry.get("param_info", [])}
        if not isinstance(name, str) or name not in info:
            raise JackgenError(f"{entry['name']} has no parameter {name!r}; it has {', '.join(info)}")
        p = info[name]
        return Param(p["name"], p["min"], p["max"], p.get("default"), p.get("unit") or "", tuple(p.get("choices") or ()))

    @contextlib.asynccontextmanager
    async def _chain_edit(self, t: int | None, chain: list):
        """A structural change: saved once it took; on the master, one at a time, and undone
        if the engine could not build the new chain."""
        if t is not None:
            yield
            self.save_session()
            return
        async with self._master_lock:
            before = list(chain)
            try:
                yield
            except BaseException:
                chain[:] = before
                raise
            self.save_session()

    def _stream_at(self, t: int, at_frame: int | None) -> dict:
        """An engine frame as a frame of track t's stream (what the producer counts), if it is known."""
        if t is None or at_frame is None or self.tracks[t].started_frame is None:
            return {}
        tr = self.tracks[t]
        return {"at": max(0, int(at_frame) - int(tr.started_frame))}

    def chain_list(self, track: object) -> dict:
        t, chain, _ = self._chain_target(track)
        out = []
        for i, c in enumerate(chain):
            d = {"index": i, "name": c["name"], "plugin": c["plugin"], "kind": c["kind"],
                 "bypass": c.get("bypass", False), "dual_mono": c.get("dual_mono", False),
                 "latency_frames": c.get("latency_frames", 0), "params": c.get("params", {})}
            if c.get("failed"):
                d["failed"] = c["failed"]
            out.append(d)
        return {"track": _track_id(t), "chain": out}

    # ------------------------------------------------------------ generator streams
    async def claim_track(self, t: int, producer: Any, source: str, stream_id: str) -> int:
        """Stop whatever feeds track t and open a new epoch for ``producer``; returns the epoch."""
        assert self.rings is not None
        await self._cancel_stream(t)
        tr = self.tracks[t]
        epoch = max(tr.epoch, tr.armed_epoch, self.rings.tracks[t].stream_word() >> 8) + 1
        fut = asyncio.get_running_loop().create_future()
        self.streams[t] = Stream(stream_id, t, epoch, source, fut, producer=producer)
        return epoch

    def on_worker_stream(self, worker: Any, msg: dict) -> None:
        """A generator worker's stream events: start the track at the first audio, note its end."""
        t, epoch = msg.get("track"), msg.get("epoch")
        s = self.streams.get(t) if isinstance(t, int) else None
        if s is None or s.epoch != epoch or s.producer is not worker:
            return
        if msg["event"] == "primed":
            if s.primed.done():
                return
            s.primed.set_result(msg.get("frames", 0))
            job = self.jobs.jobs.get(str(msg.get("id"))) if self.jobs else None
            tr = self.tracks[t]
            tr.epoch, tr.error, tr.stream_id = epoch, None, s.id
            tr.source = str(self.session_dir / "audio_gen" / f"{job.takes[0]}.{job.spec.output_format}") if job else s.path
            tr.started_frame = tr.ended_frame = None
            try:
                self.send(S.CMD_PLAY, t, epoch, 0, 0)
                tr.state = "pending"
            except JackgenError as e:
                log.error("cannot start track %d for %s: %s", t + 1, s.path, e)
        elif msg["event"] == "stream_end":
            s.end()
            if msg.get("state") == "error":
                self.tracks[t].error = f"the stream of {s.path} broke off"

    def abort_streams_of(self, worker: Any) -> None:
        """A worker died: its open streams end as aborted, so the engine fades those tracks out."""
        assert self.rings is not None
        for t, s in list(self.streams.items()):
            if s.producer is worker and not s.finished.is_set():
                if (self.rings.tracks[t].stream_word() >> 8) == s.epoch:
                    self.rings.tracks[t].end_stream(aborted=True)
                self.tracks[t].error = f"{s.path}: the worker producing it died"
                log.warning("track %d: the worker streaming %s died; the track fades out", t + 1, s.path)
                s.end()

    # ------------------------------------------------------------ actions
    def _send_maybe_timed(self, op: int, t: int, value: object, at_frame: int | None) -> None:
        if at_frame:
            self.send(op, t, value, int(at_frame) & S.FRAME_MASK)  # applied in the block of that frame
        else:
            self.send(op, t, value)

    # ---------------------------------------------------------------- mastering
    def _send_master(self) -> None:
        self.send(S.CMD_MASTER_GAIN, float(self.master["gain_db"]))
        for b, band in enumerate(self.master["eq"]):
            self.send(S.CMD_MASTER_EQ, b, EQ_TYPES[band["type"]], band["freq"], band["gain_db"], band["q"])

    def master_info(self) -> dict:
        e = self.cfg.engine
        rate = self.sample_rate or 48000
        return {"gain_db": self.master["gain_db"], "eq": self.master["eq"], "chain": self.chain_list("master")["chain"],
                "ceiling_dbtp": e.limiter_ceiling_db, "release_ms": e.limiter_release_ms,
                "latency_frames": master_latency(rate, e.limiter_lookahead_ms) + self.master_chain_latency}

    # ------------------------------------------------------------ master plugin chain (runs in the engine)
    def _engine_chain(self) -> list[dict]:
        """The master chain as the engine runs it: without plugins marked failed."""
        return _live(self.master["chain"])

    async def _push_master_change(self, change: dict) -> None:
        if change["kind"] == "chain":  # _chain_edit holds the lock
            await self._send_master_chain()
            return
        async with self._master_lock:  # after any rebuild in flight, so the indices are the new chain's
            j = _live_index(self.master["chain"], change["index"])
            if j is None or not self.engine_alive():
                return
            if change["kind"] == "param":
                self.send(S.CMD_MASTER_PARAM, self._master_gen, j, change["name"], change["value"])
            else:
                self.send(S.CMD_MASTER_BYPASS, self._master_gen, j, int(change["on"]))

    async def _send_master_chain(self, timeout_s: float = 60.0) -> None:
        """Have the engine build the master chain and wait until it plays (or say why not)."""
        if not self.engine_alive():
            return  # sent when the engine says hello
        self._master_gen += 1
        gen = self._master_gen
        atomic_write_json(chain_file(self.cfg.instance), {"gen": gen, "chain": self._engine_chain()})
        fut = asyncio.get_running_loop().create_future()
        self._master_waits[gen] = fut
        try:
            self.send(S.CMD_MASTER_CHAIN, gen)
            ok, _latency, err = await asyncio.wait_for(fut, timeout_s)
        except asyncio.TimeoutError:
            raise JackgenError(f"the engine did not take the new master chain within {timeout_s:.0f} s",
                               status=503) from None
        finally:
            self._master_waits.pop(gen, None)
        if not ok:
            raise JackgenError(f"the engine could not build the master chain: {err}", status=503)

    async def _replay_master_chain(self) -> None:
        async with self._master_lock:
            try:
                await self._send_master_chain()
            except JackgenError as e:
                log.error("restoring the master chain: %s", e)

    def check_crumb(self, role: str, code: int | None) -> None:
        """A plugin host died (``role``: engine, feeder, worker-<backend>) or a new engine says hello:
        each plugin its crumb still names is marked failed (kept in the session, shown in the chain
        list), so the restarted process runs the chain without it."""
        words = self.crumbs.get(role)
        if words is None:
            return
        for t, v in enumerate(words.tolist()):
            if not v:
                continue
            words[t] = 0
            chain = self.master["chain"] if role == "engine" else self.tracks[t].chain
            live = _live(chain)
            j = v - 1 if v > 0 else -v - 1
            if not 0 <= j < len(live):
                continue
            entry = live[j]
            how = ""
            if code is not None and code < 0:
                with contextlib.suppress(ValueError):
                    how = f" ({signal.Signals(-code).name})"
            i = chain.index(entry)
            owner = "master" if role == "engine" else str(t + 1)
            entry["failed"] = (f"crashed the {role.replace('-', ' ')}{how} while "
                               f"{'processing audio' if v > 0 else 'loading'}; the chain runs without it "
                               f"(remove it: jackgen chain {owner} remove {i})")
            log.error("%s plugin %d (%s) %s", "master" if role == "engine" else f"track {t + 1}", i,
                      entry["name"], entry["failed"])
            self.save_session()

    def set_master(self, gain_db: object = None, eq: object = None) -> dict:
        """Makeup gain (dB) and/or EQ bands ([{band 1-4, type, freq, gain_db, q}, …]); all checked before any applies."""
        if gain_db is None and eq is None:
            raise JackgenError("nothing to set: give gain_db and/or eq")
        new_gain = self.master["gain_db"]
        if gain_db is not None:
            if isinstance(gain_db, bool) or not isinstance(gain_db, (int, float)) or not math.isfinite(gain_db):
                raise JackgenError(f"master gain_db must be a number, got {gain_db!r}")
            if not MIN_GAIN_DB <= gain_db <= MAX_GAIN_DB:
                raise JackgenError(f"master gain_db must be between {MIN_GAIN_DB:g} and {MAX_GAIN_DB:g}, got {gain_db:g}")
            new_gain = float(gain_db)
        bands = [dict(b) for b in self.master["eq"]]
        if eq is not None:
            if isinstance(eq, dict):
                eq = [eq]
            if not isinstance(eq, list) or not eq:
                raise JackgenError("eq must be a list of bands: [{band: 1-4, type, freq, gain_db, q}]")
            for item in eq:
                if not isinstance(item, dict):
                    raise JackgenError(f"an EQ band is an object, got {item!r}")
                b = item.get("band")
                if isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= EQ_BANDS:
                    raise JackgenError(f"EQ band must be 1-{EQ_BANDS}, got {b!r}")
                merged = {**bands[b - 1], **{k: v for k, v in item.items() if k != "band"}}
                try:
                    bands[b - 1] = check_band(merged)
                except BandError as e:
                    raise JackgenError(f"EQ band {b}: {e}") from None
        self.master = {**self.master, "gain_db": new_gain, "eq": bands}
        self._send_master()
        self.save_session()
        return self.master_info()

    def set_gain(self, track: object, gain_db: object, at_frame: int | None = None) -> dict:
        t = check_track(track)
        g = check_finite("gain", gain_db, MIN_GAIN_DB, MAX_GAIN_DB, "dB")
        self.tracks[t].gain_db = g
        self._send_maybe_timed(S.CMD_GAIN, t, g, at_frame)
        self.save_session()
        return {"track": t + 1, "gain_db": g}

    def set_pan(self, track: object, pan: object, at_frame: int | None = None) -> dict:
        t = check_track(track)
        p = check_finite("pan", pan, -1.0, 1.0)
        self.tracks[t].pan = p
        self._send_maybe_timed(S.CMD_PAN, t, p, at_frame)
        self.save_session()
        return {"track": t + 1, "pan": p}

    def set_flag(self, kind: str, track: object, on: object, at_frame: int | None = None) -> dict:
        t = check_track(track)
        flag = parse_on_off(on, kind)
        setattr(self.tracks[t], kind, flag)
        self._send_maybe_timed(S.CMD_MUTE if kind == "mute" else S.CMD_SOLO, t, int(flag), at_frame)
        self.save_session()
        return {"track": t + 1, kind: flag}

    def allowed_roots(self) -> list[Path]:
        roots = [Path(self.cfg.control.sessions_dir).resolve()]
        roots += [Path(d).expanduser().resolve() for d in self.cfg.control.media_dirs]
        return roots

    def session_path(self, path: str) -> str:
        """A relative path from a remote client means: inside the session folder."""
        return path if Path(path).is_absolute() else str(self.session_dir / path)

    def take_path(self, name: str) -> str | None:
        """A take id ('20261130-191500-a1b2c3') names sessions/<name>/audio_gen/<take>.wav (or .flac)."""
        take = Path(name).name
        if not TAKE_RE.match(take) or not (name == take or name.endswith("/" + take)):
            return None
        for ext in ("wav", "flac"):
            p = self.session_dir / "audio_gen" / f"{take}.{ext}"
            if p.is_file():
                return str(p)
        return None

    def check_audio_file(self, path: object) -> str:
        if not isinstance(path, str) or not path:
            raise JackgenError("file must be a path to an audio file (WAV, FLAC, OGG)")
        if "\0" in path or len(path) > 4096:
            raise JackgenError("file path is not a valid path")
        path = self.take_path(path) or path
        p = Path(self.session_path(path)).resolve()  # symlinks and '..' resolved before the check
        roots = self.allowed_roots()
        if not any(p.is_relative_to(r) for r in roots):
            raise JackgenError(
                f"{path} is outside the folders jackgen reads audio from ({', '.join(map(str, roots))}): "
                f"copy it into {self.session_dir} or add its folder to control.media_dirs", status=403)
        if not p.is_file():
            raise JackgenError(f"audio file {path} does not exist")
        try:
            info = sf.info(str(p))
        except (RuntimeError, sf.LibsndfileError) as e:
            raise JackgenError(f"{path} is not an audio file jackgen can read (WAV, FLAC, OGG): {e}") from None
        if info.frames == 0:
            raise JackgenError(f"audio file {path} is empty")
        return str(p)

    async def load(self, track: object, path: object) -> dict:
        """Arm a clip: it waits in the track's ring so a trigger starts it on the exact frame."""
        t = check_track(track)
        tr = self.tracks[t]
        tr.armed = self.check_audio_file(path)
        tr.armed_epoch = 0
        self.save_session()
        if tr.state in ("playing", "pending", "underrun", "stopping"):
            return {"track": t + 1, "armed": tr.armed, "ready": False}  # armed once the current stream ends
        await self._arm(t)
        return {"track": t + 1, "armed": tr.armed, "ready": bool(tr.armed_epoch)}

    async def _arm(self, t: int) -> None:
        tr = self.tracks[t]
        if not tr.armed or not self.sample_rate or self.feeder is None:
            return
        try:
            epoch = await self._start_stream(t, tr.armed, prefill_all=True)
        except JackgenError as e:
            log.error("cannot arm %s on track %d: %s", tr.armed, t + 1, e)
            return
        tr.armed_epoch = epoch
        self.send(S.CMD_ARM, t, epoch)

    async def _start_stream(self, t: int, full: str, prefill_all: bool = False) -> int:
        """Have the feeder stream ``full`` into track t's ring as a new epoch; returns it once primed."""
        assert self.feeder is not None and self.rings is not None
        await self._cancel_stream(t)
        tr = self.tracks[t]
        epoch = max(tr.epoch, tr.armed_epoch, self.rings.tracks[t].stream_word() >> 8) + 1
        sid = uuid.uuid4().hex[:12]
        stream = Stream(sid, t, epoch, full, asyncio.get_running_loop().create_future())
        self.streams[t] = stream
        ring_frames = self.rings.tracks[t].capacity
        prefill = ring_frames if prefill_all else int(self.cfg.feeder.prefill_ms * 1e-3 * self.sample_rate)
        await self.feeder.send({"op": "stream", "id": sid, "track": t, "epoch": epoch, "path": full,
                                "rate": self.sample_rate, "prefill_frames": min(prefill, ring_frames),
                                "resume_from": None, **self.chain_request(t)})
        try:
            await asyncio.wait_for(asyncio.shield(stream.primed), 10.0)
        except asyncio.TimeoutError:
            raise Unavailable(f"the feeder did not deliver audio for {full} within 10 s") from None
        return epoch

    async def play(self, track: object, path: object = None, at: str | int | None = "now") -> dict:
        t = check_track(track)
        tr = self.tracks[t]
        if path is None or path == "":
            if not tr.armed:
                raise JackgenError(f"track {t + 1} has no clip armed: give a file, or `jackgen load {t + 1} FILE` first")
            path = tr.armed
        full = self.check_audio_file(path)
        if not self.sample_rate:
            raise Unavailable("the engine is not running yet (no sample rate): check `jackgen status`")
        at_frame = self.resolve_at(at)
        if full == tr.armed and tr.armed_epoch and tr.state == "armed":
            epoch = tr.armed_epoch  # already waiting in the ring: starts without any delay
        else:
            epoch = await self._start_stream(t, full)
        tr.epoch, tr.source, tr.error = epoch, full, None
        tr.stream_id = self.streams[t].id if t in self.streams else None
        tr.started_frame = tr.ended_frame = None
        self.send(S.CMD_PLAY, t, epoch, at_frame & S.FRAME_MASK, 0)
        tr.state = "pending"
        return {"track": t + 1, "file": full, "stream": tr.stream_id, "epoch": epoch, "at_frame": at_frame}

    async def _cancel_stream(self, t: int) -> None:
        """Stop the producer feeding track t and wait until it has let go of the ring
        (two producers on one SPSC ring would corrupt it)."""
        s = self.streams.get(t)
        if s is None or s.finished.is_set():
            return
        try:
            if s.producer is None:
                if self.feeder is None:
                    return
                await self.feeder.send({"op": "cancel", "track": t})
            else:
                await s.producer.send({"op": "stop_stream", "track": t})
        except JackgenError:
            return  # the producer is not running: nothing writes to the ring
        try:
            await asyncio.wait_for(s.finished.wait(), 3.0)
        except asyncio.TimeoutError:
            log.warning("the producer of track %d did not stop within 3 s", t + 1)

    async def stop_track(self, track: object, at: str | int | None = "now") -> dict:
        t = check_track(track)
        at_frame = self.resolve_at(at)
        self.send(S.CMD_STOP, t, at_frame & S.FRAME_MASK)
        s = self.streams.get(t)
        if s and not s.done and at_frame == 0:
            await self._cancel_stream(t)
        return {"track": t + 1, "at_frame": at_frame}

    def save_session_as(self, name: str | None = None) -> dict:
        if name:
            try:
                check_session_name(name)
            except ValueError as e:
                raise JackgenError(str(e)) from None
            self.session = name
            self.session_dir = self.cfg.session_dir(name)
        self.save_session()
        return {"session": self.session, "path": str(self.session_dir / "session.json")}

    async def load_session_named(self, name: str) -> dict:
        try:
            check_session_name(name)
        except ValueError as e:
            raise JackgenError(str(e)) from None
        folder = self.cfg.session_dir(name)
        if not (folder / "session.json").is_file():
            raise JackgenError(f"session {name!r} does not exist (no {folder / 'session.json'})", status=404)
        for t in range(N_TRACKS):
            if self.tracks[t].state in ("playing", "pending", "underrun"):
                await self.stop_track(t + 1)
        self.session, self.session_dir = name, folder
        self.tracks = [TrackState() for _ in range(N_TRACKS)]
        self.master = default_master()
        self.load_session()
        if self.engine_status:
            self._replay_state()
        for t, tr in enumerate(self.tracks):
            if tr.armed:
                self._spawn(self._arm(t))
        return {"session": name}

    async def transport(self, action: str) -> dict:
        """Start/stop JACK transport (Ardour and other clients follow it)."""
        client = self.connections.client()
        if client is None:
            raise Unavailable("JACK is not reachable: cannot drive the transport")
        if action == "start":
            await asyncio.to_thread(client.transport_start)
        else:
            await asyncio.to_thread(client.transport_stop)
        return {"transport": action}

    # ------------------------------------------------------------ MIDI
    def on_midi(self, status: int, d1: int, d2: int, source: str) -> None:
        """Every MIDI message (JACK midi_in via the engine, or a controller via rtmidi)."""
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

    # ------------------------------------------------------------ status
    def processes(self) -> dict[str, int | None]:
        procs: dict[str, int | None] = {"control": os.getpid()}
        procs["engine"] = self.engine.pid if self.engine else self.engine_pid
        procs["feeder"] = self.feeder.pid if self.feeder else None
        if self.jobs:
            for b, w in self.jobs.workers.items():
                procs[f"worker {b}"] = w.child.pid if w.child else None
        return procs

    def status(self) -> dict:
        st = self.engine_status
        tracks = []
        for i, tr in enumerate(self.tracks):
            d = asdict(tr)
            d["track"] = i + 1
            if self.meters:
                d["peak"] = self.meters["track_peak"][2 * i : 2 * i + 2]
            tracks.append(d)
        return {
            "session": self.session,
            "instance": self.cfg.instance,
            "engine_running": self.engine_alive(),
            "xruns": int(st.get("xruns", 0)),
            "underruns": int(st.get("underruns", 0)),
            "dsp_load": float(st.get("dsp_load", 0.0)),
            "callback_max_us": float(st.get("cb_max_us", 0.0)),
            "callback_mean_us": float(st.get("cb_mean_us", 0.0)),
            "sample_rate": int(st.get("sample_rate", 0)),
            "block_size": int(st.get("block_size", 0)),
            "frame_time": int(st.get("frame_time", 0)),
            "late_commands": int(st.get("late_commands", 0)),
            "callback_errors": int(st.get("callback_errors", 0)),
            "engine_restarts": self.engine.restarts if self.engine else None,
            "feeder_restarts": self.feeder.restarts if self.feeder else None,
            "tempo_bpm": self.tempo.bpm,
            "beats_per_bar": self.tempo.beats_per_bar,
            "tempo_anchor_frame": self.tempo.anchor_frame,
            "tempo_source": self.tempo_source,
            "midi_events": int(st.get("midi_events", 0)),
            "late_timed": int(st.get("late_timed", 0)),
            "master_peak": self.meters.get("master_peak"),
            "master": self.master_info(),
            "tracks": tracks,
            "jobs": self.jobs.summary() if self.jobs else [],
            "queue_length": self.jobs.queue_length() if self.jobs else 0,
            "processes": self.processes(),
            "uptime_s": round(time.monotonic() - self.started_mono, 1),
            "osc": None if self.osc is None else {"packets": self.osc.packets, "messages": self.osc.messages,
                                                  "errors": self.osc.errors, "dropped": self.osc.dropped,
                                                  "late_bundles": self.osc.late,
                                                  "subscribers": len(self.osc.subscribers)},
        }

    def _gpu_info(self) -> dict | None:
        """What the MusicGen worker runs on, once it has loaded (control itself never imports torch)."""
        w = self.jobs.workers.get("musicgen") if self.jobs else None
        if w is None or not w.info:
            return None
        return {"device": w.info.get("device"), "dtype": w.info.get("dtype"), "model": w.info.get("model")}

    def health(self) -> dict:
        disk = shutil.disk_usage(self.session_dir if self.session_dir.exists() else Path.cwd())
        jack_ok = self.engine_alive()
        return {
            "status": "ok" if jack_ok else "degraded",
            "jack": jack_ok,
            "redis": None,
            "database": None,
            "gpu": self._gpu_info(),
            "disk": {"free_bytes": disk.free, "ok": disk.free > 1 << 30},
            "queue_length": self.jobs.queue_length() if self.jobs else 0,
            "workers": {"feeder": self.feeder.pid is not None if self.feeder else False,
                        **({b: {"running": bool(w.child and w.child.pid), "ready": w.ready.is_set() and not w.fatal,
                                "error": w.fatal, "busy": w.current.id if w.current else None}
                            for b, w in self.jobs.workers.items()} if self.jobs else {})},
            "xruns": int(self.engine_status.get("xruns", 0)),
        }


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


async def serve(control: Control) -> int:
    """Run control (and its children) plus the HTTP API until SIGTERM/SIGINT."""
    import uvicorn

    from jackgen.daemon.frontends.http import build_app
    from jackgen.common.sdnotify import notify

    try:
        await control.start()
    except RingError as e:
        log.error("%s", e)
        return 2
    cfg = control.cfg
    server = uvicorn.Server(uvicorn.Config(build_app(control), host=cfg.control.http_host,
                                           port=cfg.control.http_port, log_level="warning", lifespan="off"))
    server.install_signal_handlers = lambda: None  # we own SIGTERM/SIGINT
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    serve_task = asyncio.create_task(server.serve())
    await asyncio.sleep(0)
    log.info("control listening on http://%s:%d (session '%s', instance '%s')", cfg.control.http_host,
             cfg.control.http_port, control.session, cfg.instance)
    notify("READY=1")

    async def watchdog() -> None:
        while True:  # the event loop turning is what systemd's watchdog should hear
            notify("WATCHDOG=1")
            await asyncio.sleep(5.0)

    wd = asyncio.create_task(watchdog())
    done, _ = await asyncio.wait({serve_task, asyncio.create_task(stop.wait())},
                                 return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if serve_task in done and serve_task.exception():
        log.error("HTTP server failed: %s", serve_task.exception())
        code = 2
    elif serve_task in done and not stop.is_set():
        log.error("HTTP server could not start on %s:%d (port in use?)", cfg.control.http_host, cfg.control.http_port)
        code = 2
    log.info("shutting down")
    wd.cancel()
    server.should_exit = True
    with contextlib.suppress(Exception):
        await asyncio.wait_for(serve_task, 5.0)
    await control.stop()
    return code


def default_master() -> dict:
    return {"gain_db": 0.0, "eq": [check_band({"type": "off"}) for _ in range(EQ_BANDS)], "chain": []}


def load_master(data: object) -> dict:
    """The session's mastering settings; what does not check out is reset (and logged)."""
    m = default_master()
    if not isinstance(data, dict):
        return m
    m["chain"] = [c for c in data.get("chain") or [] if isinstance(c, dict) and c.get("plugin")]
    try:
        g = data.get("gain_db", 0.0)
        if isinstance(g, (int, float)) and not isinstance(g, bool) and MIN_GAIN_DB <= g <= MAX_GAIN_DB:
            m["gain_db"] = float(g)
        for b, band in enumerate((data.get("eq") or [])[:EQ_BANDS]):
            m["eq"][b] = check_band(band)
    except BandError as e:
        log.error("the session's master EQ is invalid (%s); using a flat EQ", e)
        m["eq"] = default_master()["eq"]
    return m


def _track_id(t: int | None) -> int | str:
    """How replies name a chain's owner: 1-16, or "master"."""
    return "master" if t is None else t + 1


CRUMB_ROLES = ("engine", "feeder", *(f"worker-{b}" for b in BACKENDS))


def _live(chain: list[dict]) -> list[dict]:
    """A chain as its host runs it: without the plugins marked failed."""
    return [c for c in chain if not c.get("failed")]


def _live_index(chain: list[dict], i: int) -> int | None:
    """Where plugin ``i`` sits in the running chain (None: it is failed, not running)."""
    if chain[i].get("failed"):
        return None
    return sum(1 for c in chain[:i] if not c.get("failed"))

"""The control process's state: the session, the tracks and the master. Non-real-time, asyncio.

It talks to the engine only through the shared-memory rings: commands out, events in; to the
feeder over its unix socket; to the workers through Redis. None of them is its child: each
runs supervised beside it, and a restarted control takes over the running instance (``live``). Every
state change is persisted to ``sessions/<name>/session.json`` (atomic write, ``session``) and
replayed into a (re)started engine when it says hello, so an engine crash costs a restart, not
the mix. Each role is its own module, mixed in here: ``link`` (the engine), ``streams`` (what
feeds the tracks), ``chains`` and ``master`` (plugins and the master bus), ``midi``, ``status``.
The front ends (OSC, HTTP) and the service that runs them sit on top and are not imported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

import soundfile as sf

from jackgen.bridge.crumb import CB_HIST_BUCKETS, crumb_file, open_crumb
from jackgen.bridge.instance import N_TRACKS, InstanceRings, pow2_at_least
from jackgen.bridge.ring import InstanceLock, RingError
from jackgen.bridge import schema as S
from jackgen.common.files import atomic_write_json, write_failure
from jackgen.common.jackconn import NOW_FILE, WANT_FILE
from jackgen.common.errors import JackgenError, check_finite, check_track
from jackgen.common.media import MediaPolicy
from jackgen.common.takes import TAKE_RE
from jackgen.daemon.config import Config, check_session_name
from jackgen.daemon.control.access import Access
from jackgen.daemon.control.chains import Chains
from jackgen.daemon.control.clock import ClockFit, EngineClock, TempoMap
from jackgen.daemon.control.connections import ConnectionStore
from jackgen.daemon.control.feederlink import FeederLink
from jackgen.daemon.control.link import EngineLink
from jackgen.daemon.control.live import Live
from jackgen.daemon.control.master import Master
from jackgen.daemon.control.session import live_chain
from jackgen.daemon.control.midi import Midi
from jackgen.daemon.control.midimap import MidiMap, MidiMapError
from jackgen.daemon.control.session import SessionData, default_master, load_or_new, write_session
from jackgen.daemon.control.state import CRUMB_ROLES, TrackState, parse_on_off, track_id  # noqa: F401
from jackgen.daemon.control.status import Status
from jackgen.daemon.control.state import Stream
from jackgen.daemon.control.streams import Streams
from jackgen.daemon.engine.masterchain import chain_file
from jackgen.daemon.jobs.board import JobBoard
from jackgen.daemon.library.service import LibraryService
from jackgen.daemon.library.store import LibraryError
from jackgen.dsp.mix import MAX_GAIN_DB, MIN_GAIN_DB

log = logging.getLogger("jackgen.control")

__all__ = ["Control", "parse_on_off", "track_id"]


class Control(EngineLink, Streams, Chains, Master, Midi, Status, Live):
    def __init__(self, cfg: Config, config_path: str | None = None, session: str | None = None) -> None:
        self.cfg = cfg
        self.config_path = config_path
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
        self.clock_fit = ClockFit()
        self.tempo_source = "jackgen"  # or "jack transport" while a timebase master rolls
        self.engine_status: dict[str, Any] = {}
        self._status_rx_mono = 0.0
        self.engine_pid: int | None = None
        self.engine_hellos = 0
        self.relocks = 0  # times JACK skipped our cycles and the engine re-locked the streams
        self._restored_hellos = 0  # hellos whose connections have been restored
        self.meters: dict[str, Any] = {}
        self.streams: dict[int, Stream] = {}
        self.relay_counters: dict = {}  # remote streams: chunks that never came (gaps), entries that did not parse
        self._pongs: dict[int, asyncio.Future] = {}
        self._ping_token = 0
        self._latest: dict[tuple[int, int], object] = {}  # mixer values waiting for room in the command ring
        self._flusher: asyncio.Task | None = None
        self.lock: InstanceLock | None = None
        self.rings: InstanceRings | None = None
        self.rings_id = ""
        self.feeder: FeederLink | None = None
        self._feeder_restarts_seen = 0
        self.reattached = False  # this control took over a running instance from a previous one
        self.jobs: JobBoard | None = None
        self._tasks: list[asyncio.Task] = []
        self.started_mono = time.monotonic()
        self.status_parts: dict[str, Callable[[], Any]] = {}  # front ends' counters, shown in status()
        self.midimap = MidiMap()
        self._learn: asyncio.Future | None = None
        self.midi_inputs = None
        self.midi_log: list[dict] = []  # the last few MIDI events seen (status, learn feedback)
        self.live_midi_events = 0  # MIDI messages sent to a live instrument
        self._saver: asyncio.Task | None = None
        self._dirty = asyncio.Event()
        self.access = Access(cfg.token, cfg.control.osc_allow)
        self.status_parts["access"] = self.access.counters
        self.connections = ConnectionStore(cfg.runtime_path, self.session_dir / "connections.json")
        self.library = LibraryService(cfg)
        self.track_underruns = [0] * N_TRACKS  # per track, since this control started (metrics)
        self.plugin_load_failures = 0

    # ------------------------------------------------------------ lifecycle
    def open_rings(self) -> dict | None:
        """Take the instance: attach to the rings a previous control left to a running engine,
        feeder or workers (returns its live state), or reclaim what a crashed run left and create
        new ones (returns None)."""
        self.lock = InstanceLock(self.cfg.instance)
        self.lock.acquire()
        frames = int(self.cfg.engine.ring_seconds * 48000)
        live = self.read_live()
        if live is not None:
            try:
                rings = InstanceRings.attach(self.cfg.instance)
            except RingError:
                rings = None
            if rings is not None and rings.tracks[0].capacity == pow2_at_least(frames) and rings.in_use_elsewhere():
                self._open_crumbs()
                self.rings = rings
                self.reattached = True
                return live
            if rings is not None:
                rings.close()
        stale = self.lock.reclaim_stale()
        if stale:
            log.warning("reclaimed %d stale shared-memory segments from a previous run: %s", len(stale),
                        ", ".join(stale[:4]) + (" …" if len(stale) > 4 else ""))
        with contextlib.suppress(FileNotFoundError):
            self.live_path.unlink()
        self._open_crumbs()  # before the rings: a process that finds them finds its crash crumb too
        self.rings = InstanceRings.create(self.cfg.instance, frames)
        self.rings_id = f"{os.getpid()}-{time.time_ns()}"  # workers attach again when this changes
        return None

    def _open_crumbs(self) -> None:
        """The shared words naming the plugin each process is inside (bridge/crumb.py); kept if there."""
        self.crumbs = {role: open_crumb(self.cfg.instance, role, 1 if role == "engine" else N_TRACKS)
                       for role in CRUMB_ROLES}
        # the engine's callback-time buckets (/metrics): made here, so they go when the crumbs go
        open_crumb(self.cfg.instance, "cbhist", CB_HIST_BUCKETS)

    def load_session(self) -> None:
        try:
            self.midimap = MidiMap.load(self.session_dir / "midi_map.json")
        except MidiMapError as e:
            log.error("%s; using the default mapping", e)
            self.midimap = MidiMap()
        if not (self.session_dir / "session.json").exists():
            self.save_session()
            return
        data = load_or_new(self.session_dir, self.session_data())
        for tr, saved in zip(self.tracks, data.tracks):
            tr.restore(saved)
        self.master = data.master
        self.tempo.bpm = data.tempo_bpm
        self.tempo.beats_per_bar = data.beats_per_bar

    def session_data(self) -> SessionData:
        return SessionData(self.session, self.tempo.bpm, self.tempo.beats_per_bar,
                           [tr.settings() for tr in self.tracks], self.master)

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
                log.error("%s (the last good session.json is kept)", write_failure(self.session_dir / "session.json", e))
            await asyncio.sleep(0.5)

    def write_session(self) -> None:
        write_session(self.session_dir, self.session_data())

    async def start(self) -> None:
        """Rings, session, the engine link's tasks, MIDI inputs, the link to the feeder and the job
        board. The engine, the feeder and the workers run beside control (``jackgen run`` or
        systemd); the front ends are started by the service on top."""
        live = self.open_rings()
        self.load_session()
        self.connections.use_session(self.session_dir / "connections.json")
        self.feeder = FeederLink(self.cfg.feeder_socket, self._on_feeder_line, self._on_feeder_hello)
        if live is not None:
            if live.get("session") not in (None, self.session):
                log.warning("the running instance played session %r; this control has %r", live.get("session"),
                            self.session)
            self.apply_live_tracks(live)
        self._tasks.append(asyncio.create_task(self._event_loop(), name="engine-events"))
        self._tasks.append(asyncio.create_task(self._connections_loop(), name="jack-connections"))
        self._saver = asyncio.create_task(self._save_loop(), name="session-saver")
        self._tasks.append(self._saver)
        from jackgen.daemon.control.midiin import MidiInputs  # rtmidi: loaded only when control runs

        cc = self.cfg.control
        self.midi_inputs = MidiInputs(cc.midi_api, cc.midi_inputs, cc.midi_exclude, self.on_midi)
        self.midi_inputs.start()
        self.jobs = JobBoard(self, self.cfg.redis_url, self.cfg.redis_embedded)
        if live is not None:
            self.apply_live_streams(live)
            self.jobs.last_event_id = live.get("job_events_last")
            playing = sum(tr.state in ("playing", "pending", "underrun") for tr in self.tracks)
            log.info("re-attached to the running instance (rings %s): %d track(s) playing, %d stream(s) followed",
                     self.rings_id, playing, sum(not s.done for s in self.streams.values()))
        self.jobs.listeners.append(self._on_job_event)
        self.feeder.start()
        self.jobs.start()
        self.library.start()
        self._tasks.append(asyncio.create_task(self._live_loop(), name="live-state"))

    async def stop(self) -> None:
        """Stop control. The rings and the live state stay while another process (the engine, the
        feeder, a worker) still has them: a control restart then takes over without a gap."""
        if self.midi_inputs:
            self.midi_inputs.stop()
        try:
            self.write_session()
        except OSError as e:
            log.error("cannot write the session on shutdown: %s", e)
        if self.jobs:
            await self.jobs.stop()
        await self.library.stop()
        if self.feeder:
            await self.feeder.stop()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self.rings:
            users = self.rings.in_use_elsewhere()
            if users:
                with contextlib.suppress(OSError):
                    atomic_write_json(self.live_path, self.live_data())
                log.info("leaving the rings to %d running process(es) (pids %s) for the next control",
                         len(users), ", ".join(map(str, users[:6])))
                self.rings.close()
            else:
                self.rings.close(unlink=True)
                rt = self.cfg.runtime_path
                for path in (*(crumb_file(self.cfg.instance, r) for r in (*CRUMB_ROLES, "cbhist")),
                             chain_file(self.cfg.instance), self.live_path, rt / WANT_FILE, rt / NOW_FILE):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
        if self.lock:
            self.lock.release()

    # ------------------------------------------------------------ mixer
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

    def _on_job_event(self, view: Any, e: dict) -> None:
        """A finished job's takes go into the library (in its own thread; see LibraryService)."""
        if e.get("event") == "done":
            self.library.record(e.get("outputs"), view.id, e.get("attempt"))

    # ------------------------------------------------------------ files
    @property
    def media(self) -> MediaPolicy:
        """Which files requests may name (the session folder, the sessions folder, control.media_dirs)."""
        c = self.cfg.control
        return MediaPolicy.for_session(self.session_dir, c.sessions_dir, c.media_dirs)

    def check_track_file(self, t: int, path: object) -> str:
        """What track t may play: an audio file, or a MIDI file when its chain starts with an instrument."""
        from jackgen.generators.producer import is_midi_file, midi_events

        p = self.media.resolve(self._library_file(path), "audio or MIDI file")
        if not is_midi_file(str(p)):
            return self._readable_audio(p, path)
        if not self.has_instrument(t):
            raise JackgenError(f"{path} is a MIDI file and track {t + 1} has no instrument at the head of its "
                               f"chain: add one (`jackgen chain {t + 1} add http://synthv1.sourceforge.net/lv2`), "
                               "or render it to audio (`jackgen render`)")
        try:
            events, _end = midi_events(str(p), self.sample_rate or 48000)
        except Exception as e:  # mido raises OSError, EOFError, ValueError, KeyError… for broken files
            raise JackgenError(f"{path} is not a MIDI file jackgen can read: {e}") from None
        if not events:
            raise JackgenError(f"MIDI file {path} has no notes or other channel events")
        self.library.note_ref(self.session_dir, str(p))
        return str(p)

    def has_instrument(self, t: int) -> bool:
        """Whether track t's chain (the plugins that did not fail) starts with an instrument."""
        live = live_chain(self.tracks[t].chain)
        return bool(live and live[0].get("instrument"))

    def check_audio_file(self, path: object) -> str:
        """An audio file a request names, after the media policy, that libsndfile can read."""
        return self._readable_audio(self.media.resolve(self._library_file(path), "audio file"), path)

    def _readable_audio(self, p: Path, path: object) -> str:
        """``p`` (what ``path`` resolved to) if libsndfile reads audio in it; noted as used."""
        try:
            info = sf.info(str(p))
        except (RuntimeError, sf.LibsndfileError) as e:
            raise JackgenError(f"{path} is not an audio file jackgen can read (WAV, FLAC, OGG): {e}") from None
        if info.frames == 0:
            raise JackgenError(f"audio file {path} is empty")
        if "audio_gen" not in p.parts:  # a take is in the library already; other files are noted as used
            self.library.note_ref(self.session_dir, str(p))
        return str(p)

    def _library_file(self, name: object) -> object:
        """A take of another session (its id) or a library number (``#42``, as ``jackgen takes`` lists
        them) as the take's audio file; anything else as it came (the media policy checks it)."""
        if not isinstance(name, str) or self.library.lib is None:
            return name
        if name.startswith("#") and name[1:].isdigit():
            ident = name[1:]
        elif TAKE_RE.match(name) and self.media.take_path(name) is None:
            ident = name
        else:
            return name
        try:
            return str(self.library.lib.resolve(ident))  # one indexed query; SQLite answers in ~1 ms
        except LibraryError as e:
            raise JackgenError(str(e), status=e.status) from None

    # ------------------------------------------------------------ sessions
    def save_session_as(self, name: str | None = None) -> dict:
        if name:
            try:
                check_session_name(name)
            except ValueError as e:
                raise JackgenError(str(e)) from None
            self.session = name
            self.session_dir = self.cfg.session_dir(name)
            self.connections.path = self.session_dir / "connections.json"
        try:
            if name:
                atomic_write_json(self.connections.path, self.connections.saved)
            self.write_session()  # now, not at the next background save: the caller may read it next
        except OSError as e:
            raise JackgenError(write_failure(self.session_dir / "session.json", e), status=507) from None
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
        self.connections.use_session(folder / "connections.json")
        if self.engine_status:
            self._replay_state()
        for t, tr in enumerate(self.tracks):
            if tr.armed:
                self._spawn(self._arm(t))
        return {"session": name}


"""The engine process: the JACK client around :class:`jackgen.daemon.rt.EngineCore`.

Owns the JACK ports (``track_01_L`` … ``track_16_R``, ``master_L/R``, ``midi_in``).
The process callback (``JackDriver._process``) runs ``EngineCore.process`` and
copies the result to the ports; the rules it follows are at the top of
``rt.py``. The main thread only waits: any Python it ran would hold the GIL the
callback needs (the interpreter hands the GIL over only every 5 ms).

Exit codes: 0 after SIGTERM/SIGINT, 2 if JACK cannot be reached at start,
3 when the JACK server goes away while running, 5 when control has made new rings
(both so that a supervisor restarts us).
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import signal
import sys
import threading
import time

import jack
import numpy as np


# JACK-Client's cffi handles: the public Port.get_buffer() builds a buffer object
# and asks JACK for the block size on every call; going to the C function
# directly keeps the per-port cost to one foreign call.
from jack import _ffi as jack_ffi  # noqa: PLC2701
from jack import _lib as jack_lib  # noqa: PLC2701

from jackgen.bridge.crumb import CB_HIST_BUCKETS, open_crumb
from jackgen.bridge.instance import N_TRACKS, InstanceRings
from jackgen.bridge.schema import MAX_MIDI_EVENTS_PER_BLOCK
from jackgen.daemon.config import Config
from jackgen.daemon.engine.connections import ConnectionKeeper
from jackgen.daemon.engine.jacktime import ffi as _jt_ffi
from jackgen.daemon.engine.jacktime import lib as _jt_lib
from jackgen.daemon.engine.jacktime import report_output_latency
from jackgen.daemon.engine.masterchain import Loader, MasterChain
from jackgen.common.proctitle import set_title
from jackgen.daemon.engine.blockcore import EngineCore
from jackgen.common.sdnotify import notify
from jackgen.dsp._kernels import ffi as kffi
from jackgen.dsp._kernels import lib as klib

log = logging.getLogger("jackgen.engine")

PRETTY_NAME = "http://jackaudio.org/metadata/pretty-name"
HIST_US = CB_HIST_BUCKETS  # callback-time histogram: 1 µs buckets up to 100 ms

EXIT_OK = 0
EXIT_NO_JACK = 2
EXIT_JACK_GONE = 3
EXIT_RINGS_REPLACED = 5


def port_names(n_tracks: int = N_TRACKS) -> list[str]:
    """Output port short names in the order the core's ``out_rows`` are laid out."""
    names = [f"track_{t + 1:02d}_{c}" for t in range(n_tracks) for c in ("L", "R")]
    return names + ["master_L", "master_R"]


def pretty_name(short: str) -> str:
    if short.startswith("track_"):
        _, num, ch = short.split("_")
        return f"jackgen Track {int(num)} {ch}"
    if short.startswith("master_"):
        return f"jackgen Master {short[-1]}"
    return "jackgen MIDI in"


def hist_percentiles(hist: np.ndarray, qs=(0.5, 0.99, 0.999)) -> dict[str, float]:
    """Percentiles (µs) from a 1-µs-bucket histogram."""
    total = int(hist.sum())
    out: dict[str, float] = {}
    if total == 0:
        return {"p50": 0.0, "p99": 0.0, "p999": 0.0, "max": 0.0}
    cum = np.cumsum(hist)
    for q in qs:
        key = "p" + f"{q * 100:g}".replace(".", "")
        out[key] = float(np.searchsorted(cum, q * total, side="left"))
    out["max"] = float(np.nonzero(hist)[0][-1])
    return out


class JackDriver:
    """Connects an EngineCore to a JACK client. Callbacks documented by thread."""

    def __init__(self, cfg: Config, rings: InstanceRings) -> None:
        self.cfg = cfg
        self.rings = rings
        self.stop = threading.Event()
        self.jack_gone = False
        self.client = self._open_client()
        c = self.client
        self._client_ptr = c._ptr  # noqa: SLF001
        self.outports = [c.outports.register(name) for name in port_names()]
        self.midi_in = c.midi_inports.register("midi_in")
        for p in [*self.outports, self.midi_in]:
            try:
                c.set_property(p, PRETTY_NAME, pretty_name(p.shortname))
            except (jack.JackError, AttributeError):  # metadata needs JACK >= 1.9.13 / 0.125
                pass
        e = cfg.engine
        self.master_chain = MasterChain(c.samplerate, open_crumb(cfg.instance, create=False))
        self.core = EngineCore(
            rings.tracks,
            rings.commands,
            rings.events,
            c.samplerate,
            c.blocksize,
            max_commands_per_block=e.max_commands_per_block,
            fade_ms=e.fade_ms,
            gain_smoothing_ms=e.gain_smoothing_ms,
            limiter_ceiling_db=e.limiter_ceiling_db,
            limiter_release_ms=e.limiter_release_ms,
            limiter_lookahead_ms=e.limiter_lookahead_ms,
            master_chain=self.master_chain,
            meter_hz=e.meter_hz,
        )
        # The kernel copies all 34 rows to the port buffers in one call, calling
        # libjack's jack_port_get_buffer through a function pointer.
        self._get_buffer = kffi.cast(
            "jg_get_buffer_fn", jack_ffi.cast("uintptr_t", jack_ffi.addressof(jack_lib, "jack_port_get_buffer"))
        )
        self._port_array = kffi.new(
            "void *[]", [kffi.cast("void *", jack_ffi.cast("uintptr_t", p._ptr)) for p in self.outports]  # noqa: SLF001
        )
        self._n_ports = len(self.outports)
        self._cycle = (_jt_ffi.new("uint32_t *"), _jt_ffi.new("uint64_t *"), _jt_ffi.new("uint64_t *"),
                       _jt_ffi.new("float *"))
        self._client_vp = _jt_ffi.cast("void *", jack_ffi.cast("uintptr_t", self._client_ptr))

        def jack_fn(ctype: str, name: str):
            return kffi.cast(ctype, jack_ffi.cast("uintptr_t", jack_ffi.addressof(jack_lib, name)))

        self._midi_count_fn = jack_fn("jg_midi_count_fn", "jack_midi_get_event_count")
        self._midi_get_fn = jack_fn("jg_midi_get_fn", "jack_midi_event_get")
        self._midi_port = kffi.cast("void *", jack_ffi.cast("uintptr_t", self.midi_in._ptr))  # noqa: SLF001
        self._p_midi = kffi.cast("uint64_t *", kffi.from_buffer(self.core.midi_buf))
        self._pos = jack_ffi.new("jack_position_t *")
        self.core.transport_reader = self._transport_bbt
        start, stop = jack_lib.jack_transport_start, jack_lib.jack_transport_stop  # both real-time safe
        ptr = self._client_ptr
        self.core.transport_control = lambda rolling: start(ptr) if rolling else stop(ptr)
        self.keeper = ConnectionKeeper(c, [*self.outports, self.midi_in], cfg.runtime_path)
        # per-block callback time, 1 µs buckets, in shared memory: /metrics folds it into its
        # histogram in control, so the process thread only ever adds one to a word
        self.hist = open_crumb(cfg.instance, "cbhist", HIST_US, create=False)  # control makes it
        self.hist[:] = 0
        c.set_process_callback(self._process)
        # xruns are counted by a C callback into this array (see jg_count_event)
        self.xrun_counter = np.zeros(1, dtype=np.uint64)
        count_fn = jack_ffi.cast("JackXRunCallback", kffi.cast("uintptr_t", kffi.addressof(klib, "jg_count_event")))
        counter_ptr = jack_ffi.cast("void *", kffi.cast("uintptr_t", kffi.from_buffer(self.xrun_counter)))
        if jack_lib.jack_set_xrun_callback(self._client_ptr, count_fn, counter_ptr) != 0:
            raise jack.JackError("could not set the xrun callback")
        # the mastering limiter's look-ahead delays master_L/R: say so, for recorders to align
        self._set_latency = report_output_latency(c, self.outports[-2:], self.core.master.latency)
        self.loader = Loader(self.master_chain, cfg.instance, cfg.plugins.vst3_dirs, lambda: self.core.n,
                             on_swap=lambda chain_latency: self._set_latency(self.core.master.latency + chain_latency))
        c.set_blocksize_callback(self._blocksize)
        c.set_samplerate_callback(self._samplerate)
        c.set_shutdown_callback(self._shutdown)

    def _open_client(self) -> jack.Client:
        name = self.cfg.jack.client_name
        server = self.cfg.jack_server
        last: Exception | None = None
        # use_exact_name: a half-dead predecessor still holding the name is waited
        # out briefly instead of silently becoming "jackgen-01". libjack prints three
        # lines to stderr per failed attempt (60 for this loop, and again each time a
        # supervisor restarts us): while connecting they go to the debug log, and the
        # caller logs one line. Only while connecting: once running, libjack may call
        # its error function from the process thread, where Python must not run.
        jack.set_error_function(lambda msg: log.debug("libjack: %s", msg))
        # A server that is there but does not answer (jackd 1.9.21 looping on a dead client's
        # socket) makes jack_client_open wait forever: give up after connect_timeout_s, say so,
        # and exit so the supervisor tries again with a fresh process.
        timeout_s = getattr(getattr(self.cfg, "jack", None), "connect_timeout_s", 10.0)
        hung = threading.Timer(timeout_s, _not_answering, args=(self.cfg, server, timeout_s))
        hung.daemon = True
        hung.start()
        try:
            for _ in range(20):
                try:
                    return jack.Client(name, use_exact_name=True, no_start_server=True, servername=server)
                except jack.JackOpenError as e:
                    last = e
                    time.sleep(0.25)
            raise last  # type: ignore[misc]
        finally:
            hung.cancel()
            jack.set_error_function(None)

    # ---- process thread -------------------------------------------------
    def _process(self, frames: int) -> None:
        """JACK process callback (process thread). Never raises."""
        t0 = time.perf_counter_ns()
        core = self.core
        try:
            cf, cu, _cn, cp = self._cycle
            if _jt_lib.jack_get_cycle_times(self._client_vp, cf, cu, _cn, cp) == 0:
                frame_time = cf[0]
                core.cycle_usecs = cu[0]
                core.period_usecs = cp[0]
            else:
                frame_time = jack_lib.jack_last_frame_time(self._client_ptr)
            midi = klib.jg_midi_collect(self._get_buffer, self._midi_count_fn, self._midi_get_fn, self._midi_port,
                                        frames, self._p_midi, MAX_MIDI_EVENTS_PER_BLOCK)
            core.process(frames, frame_time, midi)
            klib.jg_scatter_rows(self._get_buffer, self._port_array, core._p_out, self._n_ports, frames)  # noqa: SLF001
            core.dsp_load = jack_lib.jack_cpu_load(self._client_ptr)
            core.xruns = int(self.xrun_counter[0])
        except Exception:
            core.callback_errors += 1
            try:  # silence for this block
                klib.jg_zero_ports(self._get_buffer, self._port_array, self._n_ports, frames)
            except Exception:
                pass
        dt = time.perf_counter_ns() - t0
        us = dt // 1000
        self.hist[us if us < HIST_US else HIST_US - 1] += 1
        core.cb_count += 1
        core.cb_sum_ns += dt
        if dt > core.cb_max_ns:
            core.cb_max_ns = dt

    def _transport_bbt(self) -> list | None:
        """Process thread (called when a status goes out): the JACK transport's BBT for this
        cycle while a timebase master rolls it. jack_transport_query is real-time safe here."""
        pos = self._pos
        if jack_lib.jack_transport_query(self._client_ptr, pos) != jack_lib.JackTransportRolling:
            return None
        if not pos.valid & jack_lib.JackPositionBBT or pos.beats_per_minute <= 0:
            return None
        offset = pos.bbt_offset if pos.valid & jack_lib.JackBBTFrameOffset else 0
        return [pos.bar, pos.beat, pos.tick, pos.ticks_per_beat, pos.beats_per_bar, pos.beats_per_minute, offset]

    # ---- notification thread ---------------------------------------------
    def _blocksize(self, blocksize: int) -> None:
        # Called by JACK before the first process cycle at the new size.
        self.core.set_block_size(blocksize)

    def _samplerate(self, samplerate: int) -> None:
        if samplerate != self.core.sample_rate:
            log.error("JACK sample rate changed to %d Hz (engine runs at %d); restarting", samplerate,
                      self.core.sample_rate)
            self.jack_gone = True
            self.stop.set()

    def _shutdown(self, status: jack.Status, reason: str) -> None:
        self.jack_gone = True
        self.shutdown_reason = reason
        self.stop.set()

    # ---- main thread -----------------------------------------------------
    def run(self) -> int:
        c = self.client
        self.core.warm_up()
        # The callback waits for the GIL whenever another thread of ours runs
        # Python; the interpreter makes such a thread hand it over only every
        # switch interval (5 ms by default: a whole period at 256 frames).
        sys.setswitchinterval(0.0005)
        gc.collect()
        gc.freeze()  # everything built so far is permanent; nothing new is cyclic
        gc.disable()
        self.loader.start()
        c.activate()
        if self.cfg.jack.autoconnect_master:
            self._autoconnect()
        self.core.hello(os.getpid())
        log.info(
            "engine running: client %s, %d Hz, %d frames/block, %d tracks",
            c.name, c.samplerate, c.blocksize, N_TRACKS,
        )
        write_state(self.cfg, "running", f"client {c.name} on the JACK server")
        notify("READY=1")
        last_blocks = -1
        next_keep = 0.0
        while not self.stop.is_set():
            if self.rings.replaced():
                log.warning("control has made new rings (a fresh start of the instance); restarting to attach them")
                self.rings_replaced = True
                break
            if time.monotonic() >= next_keep:  # the connections to remember and to restore
                next_keep = time.monotonic() + 2.0
                try:
                    self.keeper.tick()
                except Exception:
                    log.exception("keeping JACK connections")
            # SIGTERM/SIGINT are blocked in every thread (see run_engine) and taken here,
            # synchronously; the 1 s timeout notices a JACK shutdown.
            # Only SIGTERM/SIGINT stop it: after a SIGSTOP/SIGCONT, sigtimedwait has returned
            # signal 35 (a real-time signal, not in the set) here, which used to end the engine.
            got = signal.sigtimedwait(STOP_SIGNALS, 1.0)
            if got is not None and got.si_signo in STOP_SIGNALS:
                log.info("engine: signal %d from pid %d; stopping", got.si_signo, got.si_pid)
                self.stop.set()
            blocks = self.core.blocks
            if blocks != last_blocks:  # systemd's watchdog hears from us only while JACK calls us
                notify("WATCHDOG=1")
                last_blocks = blocks
        if self.jack_gone:
            log.error("JACK server went away (%s); exiting so the supervisor can restart the engine",
                      getattr(self, "shutdown_reason", "sample-rate change"))
            write_state(self.cfg, "server gone", f"the JACK server went away "
                        f"({getattr(self, 'shutdown_reason', 'sample-rate change')}); reconnecting")
            return EXIT_JACK_GONE
        # jackd 1.9.21 deadlocks in jack_client_close() if the closing client still
        # owns metadata on many ports (the server's property-change notification to
        # the departing client is never answered): remove ours while still active.
        for p in [*self.outports, self.midi_in]:
            with contextlib.suppress(jack.JackError, AttributeError):
                c.remove_properties(p)
        try:
            c.deactivate()
            c.close()
        except jack.JackError:
            pass
        return EXIT_RINGS_REPLACED if getattr(self, "rings_replaced", False) else EXIT_OK

    def _autoconnect(self) -> None:
        try:
            playback = self.client.get_ports(is_audio=True, is_input=True, is_physical=True)
        except jack.JackError:
            return
        for src, dst in zip(self.outports[-2:], playback[:2]):
            try:
                self.client.connect(src, dst)
            except jack.JackError as e:
                log.warning("could not connect %s to %s: %s", src.name, dst.name, e)

    def stats(self) -> dict:
        core = self.core
        core.xruns = int(self.xrun_counter[0])
        return {
            "xruns": core.xruns,
            "underruns": core.underruns,
            "blocks": core.blocks,
            "callback_errors": core.callback_errors,
            "late_commands": core.late_commands,
            "sample_rate": core.sample_rate,
            "block_size": core.n,
            "callback_us": hist_percentiles(self.hist),
        }


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def write_state(cfg: Config, state: str, message: str = "") -> None:
    """``<runtime>/engine.json``: what the engine is doing about JACK (status shows it)."""
    try:
        cfg.runtime_path.mkdir(parents=True, exist_ok=True)
        path = cfg.runtime_path / "engine.json"
        tmp = path.with_name(f".engine.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"state": state, "message": message, "pid": os.getpid(), "at": time.time()}))
        os.replace(tmp, path)
    except OSError:
        pass


def _not_answering(cfg: Config, server: str | None, timeout_s: float) -> None:
    msg = (f"JACK server {server or '(default)'!r} not answering: connecting took more than {timeout_s:.0f} s; "
           "trying again with a new engine process")
    log.error("%s", msg)
    write_state(cfg, "not answering", msg)
    os._exit(EXIT_NO_JACK)


def run_engine(cfg: Config, stats_out: str | None = None, attach_timeout_s: float = 10.0) -> int:
    set_title("jackgen: engine")
    write_state(cfg, "connecting", "connecting to the JACK server")
    # Block the stop signals before libjack starts its threads (they inherit the
    # mask). A signal delivered to libjack's notification thread interrupts its
    # socket read, the thread exits, and jack_client_close() then waits forever
    # for a reply nobody sends. The main thread takes them with sigtimedwait.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    rings = InstanceRings.attach(cfg.instance, timeout_s=attach_timeout_s)
    try:
        driver = JackDriver(cfg, rings)
    except jack.JackOpenError as e:
        server = cfg.jack_server or "default"
        if e.status.name_not_unique:
            log.error("a JACK client named '%s' already exists on server '%s' (another jackgen engine?): "
                      "stop it, or give this one another jack.client_name", cfg.jack.client_name, server)
            return EXIT_NO_JACK
        log.error("cannot connect to the JACK server '%s' (%s): start jackd (or PipeWire's JACK) first, "
                  "or set jack.server / JACK_DEFAULT_SERVER", server, e)
        write_state(cfg, "no server", f"cannot connect to the JACK server {server!r}: is it running?")
        return EXIT_NO_JACK
    code = driver.run()
    gc.enable()
    if stats_out:
        tmp = stats_out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(driver.stats(), f)
        os.replace(tmp, stats_out)
    log.info("engine stopped: %s", json.dumps(driver.stats()))
    return code

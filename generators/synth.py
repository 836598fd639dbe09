"""FluidSynth rendering of MIDI files, block by block, with the ``fluidsynth`` CLI's sound.

``FluidRenderer`` keeps one synthesizer with the SoundFont loaded (loading the
141 MB General MIDI font is the slow part: keep a renderer warm between jobs) and
plays a MIDI file through FluidSynth's own MIDI player, clocked by the samples
it renders (``player.timing-source = sample``, as ``fluidsynth -F`` does), so
event timing and every synthesis default — gain 0.2, reverb and chorus on,
4th-order interpolation, 16 MIDI channels — are the command line's. Output is
float32 (the CLI writes dithered 16-bit by default; the difference is the
dither, about −90 dBFS).

Rendering runs FluidSynth's 64-frame engine blocks and checks the player after
each, so a render ends where the CLI's ends.
"""

from __future__ import annotations

import bisect
import contextlib
import ctypes
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from jackgen.generators.clip import find_soundfont

FLUID_BLOCK = 64  # FluidSynth renders in 64-frame blocks; the CLI's period size
BIG_STEP = 1024
FLUID_MOD_CC, FLUID_MOD_BIPOLAR, GEN_FILTERFC, FLUID_SYNTH_ADD = 16, 2, 8, 1  # fluidsynth/mod.h, gen.h, synth.h


class FluidRenderer:
    """One warm FluidSynth instance. Not thread-safe: use it from one thread."""

    def __init__(self, soundfont: str | None = None, sample_rate: int = 48000, gain: float = 0.2,
                 reverb: bool = True, chorus: bool = True) -> None:
        import fluidsynth

        self._fs = fluidsynth
        _quiet_fluid_warnings(fluidsynth)
        self.soundfont = find_soundfont(soundfont)
        self.sample_rate = int(sample_rate)
        settings = {
            "player.timing-source": "sample",  # the player advances with rendered samples, not the wall clock
            "synth.lock-memory": 0,
            "synth.reverb.active": int(reverb),
            "synth.chorus.active": int(chorus),
        }
        self.synth = fluidsynth.Synth(gain=float(gain), samplerate=float(sample_rate), channels=16, **settings)
        sfid = self.synth.sfload(self.soundfont)
        if sfid < 0:
            self.synth.delete()
            raise RuntimeError(f"FluidSynth could not load the SoundFont {self.soundfont}")
        self._sfont = fluidsynth.fluid_synth_get_sfont_by_id(self.synth.synth, sfid)
        c = fluidsynth.cfunc
        vp, ci, cf = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
        self._add_sfont = c("fluid_synth_add_sfont", ci, ("synth", vp, 1), ("sfont", vp, 1))
        self._remove_sfont = c("fluid_synth_remove_sfont", ci, ("synth", vp, 1), ("sfont", vp, 1))
        self._set_gain = c("fluid_synth_set_gain", None, ("synth", vp, 1), ("gain", cf, 1))
        self._noteon = c("fluid_synth_noteon", ci, ("synth", vp, 1), ("chan", ci, 1), ("key", ci, 1), ("vel", ci, 1))
        self._noteoff = c("fluid_synth_noteoff", ci, ("synth", vp, 1), ("chan", ci, 1), ("key", ci, 1))
        self._program_change = c("fluid_synth_program_change", ci, ("synth", vp, 1), ("chan", ci, 1),
                                 ("program", ci, 1))
        self._cc = c("fluid_synth_cc", ci, ("synth", vp, 1), ("chan", ci, 1), ("ctrl", ci, 1), ("val", ci, 1))
        self._cur_tick = c("fluid_player_get_current_tick", ci, ("player", vp, 1))
        self._new_mod = c("new_fluid_mod", vp)
        self._delete_mod = c("delete_fluid_mod", None, ("mod", vp, 1))
        self._mod_source1 = c("fluid_mod_set_source1", None, ("mod", vp, 1), ("src", ci, 1), ("flags", ci, 1))
        self._mod_source2 = c("fluid_mod_set_source2", None, ("mod", vp, 1), ("src", ci, 1), ("flags", ci, 1))
        self._mod_dest = c("fluid_mod_set_dest", None, ("mod", vp, 1), ("dst", ci, 1))
        self._mod_amount = c("fluid_mod_set_amount", None, ("mod", vp, 1), ("amount", ctypes.c_double, 1))
        self._add_default_mod = c("fluid_synth_add_default_mod", ci, ("synth", vp, 1), ("mod", vp, 1),
                                  ("mode", ci, 1))
        self.gain = float(gain)
        self._write_float = fluidsynth.cfunc(
            "fluid_synth_write_float", ctypes.c_int,
            ("synth", ctypes.c_void_p, 1), ("len", ctypes.c_int, 1),
            ("lout", ctypes.c_void_p, 1), ("loff", ctypes.c_int, 1), ("lincr", ctypes.c_int, 1),
            ("rout", ctypes.c_void_p, 1), ("roff", ctypes.c_int, 1), ("rincr", ctypes.c_int, 1))

    def close(self) -> None:
        if self.synth is not None:
            self.synth.delete()
            self.synth = None

    def __enter__(self) -> FluidRenderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def fresh_synth(self, gain: float | None = None) -> Iterator[int]:
        """A new synthesizer that shares the loaded SoundFont: the same state for every render.

        FluidSynth keeps reverb/chorus tails, releasing voices and its tick counter
        across ``system_reset``, so two renders on one synth differ. A new synth costs
        about a millisecond; reloading the font would cost half a second.
        """
        synth = self._fs.new_fluid_synth(self.synth.settings)
        if not synth:
            raise RuntimeError("FluidSynth could not create a synthesizer")
        try:
            if self._add_sfont(synth, self._sfont) < 0:
                raise RuntimeError("FluidSynth could not share the loaded SoundFont")
            self._set_gain(synth, float(self.gain if gain is None else gain))
            self._brightness(synth)
            yield synth
        finally:
            self._remove_sfont(synth, self._sfont)  # the font stays owned by self.synth
            self._fs.delete_fluid_synth(synth)

    def _brightness(self, synth: int) -> None:
        """CC 74 (GM2 'brightness') moves the low-pass filter: 64 leaves it where the preset has it, 0 closes
        it by 6 octaves, 127 opens it. SoundFont 2's default modulators have no CC 74 (FluidSynth ignores it
        otherwise); the procedural composer's wobble basses sweep it."""
        mod = self._new_mod()
        try:
            self._mod_source1(mod, 74, FLUID_MOD_CC | FLUID_MOD_BIPOLAR)
            self._mod_source2(mod, 0, 0)  # no second source
            self._mod_dest(mod, GEN_FILTERFC)
            self._mod_amount(mod, 7200.0)
            self._add_default_mod(synth, mod, FLUID_SYNTH_ADD)
        finally:
            self._delete_mod(mod)

    def write(self, synth: int, buf: np.ndarray, start: int, frames: int) -> None:
        """Render ``frames`` frames into rows ``start…`` of the (n, 2) float32 ``buf``."""
        p = buf.ctypes.data + start * 8
        self._write_float(synth, frames, p, 0, 2, p, 1, 2)

    def render(self, midi_path: str | os.PathLike[str], *, chunk_frames: int = 4096,
               first_chunk_frames: int | None = None, max_frames: int | None = None, tail_s: float = 0.0,
               should_stop: Callable[[], bool] | None = None, gain: float | None = None,
               midi=None) -> Iterator[np.ndarray]:
        """Yield (n, 2) float32 chunks of ``midi_path`` rendered at ``sample_rate``.

        Ends when the MIDI player has played the file, plus ``tail_s`` seconds of
        release and reverb; or after ``max_frames``; or when ``should_stop()``.
        The first chunk can be smaller (``first_chunk_frames``) for a quick start.
        ``midi``: the file's ``mido.MidiFile``, when the caller has just written it
        (its event times are not read from the file a second time).
        """
        path = str(midi_path)
        if not Path(path).is_file():
            raise FileNotFoundError(f"MIDI file {path} does not exist")
        with self.fresh_synth(gain) as synth:
            yield from self._play(synth, path, chunk_frames, first_chunk_frames, max_frames, tail_s, should_stop,
                                  midi)

    def _play(self, synth, path, chunk_frames, first_chunk_frames, max_frames, tail_s, should_stop, midi):
        fs = self._fs
        player = fs.new_fluid_player(synth)
        if not player:
            raise RuntimeError("FluidSynth could not create a MIDI player")
        try:
            if fs.fluid_player_add(player, path.encode()) != fs.FLUID_OK:
                raise ValueError(f"{path} is not a MIDI file FluidSynth can read")
            fs.fluid_player_play(player)
            events, big_ticks = _event_ticks(path, self.sample_rate, midi)
            tail_frames = int(tail_s * self.sample_rate)
            total = 0
            playing = True
            size = max(FLUID_BLOCK, int(first_chunk_frames or chunk_frames))
            while True:
                if should_stop is not None and should_stop():
                    return
                want = size if max_frames is None else min(size, max_frames - total)
                want -= want % FLUID_BLOCK if want > FLUID_BLOCK else 0
                if want <= 0:
                    return
                buf = np.zeros((want, 2), dtype=np.float32)
                done = 0
                while done < want:
                    # Big steps (one ctypes call per 1024 frames, not per 64) where no MIDI event
                    # falls inside the step; FluidSynth's own 64-frame blocks around events and near
                    # the end, so every event lands on the block the CLI's lands on (FluidSynth runs
                    # a batch of blocks' timers before it mixes them) and the render stops where the
                    # CLI's stops.
                    n = FLUID_BLOCK
                    if playing:
                        tick = self._cur_tick(player)
                        i = bisect.bisect_right(events, tick)
                        if i < len(events) and events[i] - tick > big_ticks:
                            n = BIG_STEP
                    elif tail_frames > BIG_STEP:
                        n = BIG_STEP
                    n = min(n, want - done)
                    self.write(synth, buf, done, n)
                    done += n
                    if playing:
                        if fs.fluid_player_get_status(player) != fs.FLUID_PLAYER_PLAYING:
                            playing = False
                            if tail_frames <= 0:
                                break
                    else:
                        tail_frames -= n
                        if tail_frames <= 0:
                            break
                total += done
                yield buf[:done]
                if not playing and tail_frames <= 0:
                    return
                size = int(chunk_frames)
        finally:
            fs.fluid_player_stop(player)
            fs.delete_fluid_player(player)


def _event_ticks(path: str, rate: int, mid=None) -> tuple[list[int], float]:
    """The absolute ticks of a MIDI file's channel events and of its end, sorted, and how many ticks a big
    step spans at the file's fastest tempo (plus a block's worth, for rounding)."""
    import mido

    try:
        mid = mid if mid is not None else mido.MidiFile(path)
    except Exception:  # FluidSynth read it; mido could not: 64-frame blocks throughout
        return [0], float("inf")
    ticks: set[int] = set()
    fastest = 500000
    end = 0
    for track in mid.tracks:
        now = 0
        for m in track:
            now += m.time
            if m.type == "set_tempo":
                fastest = min(fastest, m.tempo)
                ticks.add(now)
            elif not m.is_meta:
                ticks.add(now)
        end = max(end, now)
    ticks.add(end)
    per_frame = mid.ticks_per_beat * 1e6 / fastest / rate
    return sorted(ticks), (BIG_STEP + 2 * FLUID_BLOCK) * per_frame + 2


_QUIETED = False


def _quiet_fluid_warnings(fs) -> None:
    """FluidSynth warns 'No preset found' for every channel of a synth created before a
    font is added (``fresh_synth`` adds the shared font right after): keep errors only."""
    global _QUIETED
    if _QUIETED:
        return
    set_log = fs.cfunc("fluid_set_log_function", ctypes.c_void_p, ("level", ctypes.c_int, 1),
                       ("fun", ctypes.c_void_p, 1), ("data", ctypes.c_void_p, 1))
    for level in (2, 3, 4):  # FLUID_WARN, FLUID_INFO, FLUID_DBG
        set_log(level, None, None)
    _QUIETED = True


def render_file(midi_path: str, out_path: str, soundfont: str | None = None, sample_rate: int = 48000,
                tail_s: float = 0.0, subtype: str | None = None, progress: Callable[[float], None] | None = None) -> dict:
    """``jackgen render``: MIDI file → audio file, offline, as fast as FluidSynth goes."""
    import time

    import mido
    import soundfile as sf

    try:
        length_s = mido.MidiFile(midi_path).length
    except Exception as e:  # mido raises many types on broken files
        raise ValueError(f"{midi_path} is not a MIDI file jackgen can read: {e}") from None
    t0 = time.perf_counter()
    out = Path(out_path)
    tmp = out.with_name(f".{out.name}.part")
    frames = 0
    with FluidRenderer(soundfont, sample_rate) as r:
        fmt = _format_for(out)
        subtype = subtype or {"FLAC": "PCM_24", "OGG": "VORBIS"}.get(fmt, "FLOAT")
        with sf.SoundFile(str(tmp), "w", samplerate=sample_rate, channels=2, subtype=subtype, format=fmt) as f:
            for chunk in r.render(midi_path, chunk_frames=16384, tail_s=tail_s):
                f.write(chunk)
                frames += chunk.shape[0]
                if progress and length_s > 0:
                    progress(min(1.0, frames / sample_rate / (length_s + tail_s)))
        soundfont_used = r.soundfont
    tmp.replace(out)
    took = time.perf_counter() - t0
    return {"path": str(out), "frames": frames, "seconds": frames / sample_rate, "render_s": took,
            "realtime_factor": (frames / sample_rate) / took if took > 0 else None, "soundfont": soundfont_used,
            "sample_rate": sample_rate}


def _format_for(path: Path) -> str:
    ext = path.suffix.lower().lstrip(".")
    formats = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG", "aiff": "AIFF", "aif": "AIFF"}
    if ext not in formats:
        raise ValueError(f"cannot write {path.name}: use a .wav, .flac, .ogg or .aiff file name")
    return formats[ext]

"""The procedural composer: genre, key, tempo, seed (and a song form) → General MIDI parts.

Deterministic by construction: every choice comes from one ``numpy`` PCG64
generator seeded with the job's seed, in a fixed order, so the same request
gives the same notes (and, rendered by FluidSynth, the same samples). Seed and
seed+1 differ in what a listener hears: the chord progression, the drum pattern
variant of each section, the fills, rolls, slides and the melody.

Parts (each a stem): ``drums`` on MIDI channel 10 with the genre's GS kit,
``bass`` or ``808`` (a sine voice held from kick to kick that slides between
notes by pitch bend, range ±12 semitones set by RPN 0), ``chords``, ``melody``
and, in some genres, ``perc``. Wobble basses sweep CC 74 (brightness, which
the renderer maps to the low-pass filter); reese basses are two detuned voices.

A take longer than 16 bars is arranged in sections (intro, verse, hook or drop,
build, break, outro) with parts entering and leaving; a ``structure`` such as
``intro:4,drop:8,break:4,drop:8`` sets them, and repeats when the take is longer.
Chord progressions are diatonic and start on the tonic, so the key is what a
listener (or a chroma-based key finder) hears.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import mido
import numpy as np

from jackgen.generators import genres as G
from jackgen.generators.vocab import GENRES, Key, canonical_genre, parse_key

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
DRUM_CHANNEL = 9  # MIDI channel 10
TICKS_PER_BEAT = 480
CHANNELS = {"bass": 0, "chords": 1, "melody": 2, "808": 3, "drums": DRUM_CHANNEL, "perc": DRUM_CHANNEL}
LAYER_CHANNELS = (4, 5)
BEND_RANGE = 12  # semitones, set on every channel that bends
STYLES = G.STYLES

# Song forms for takes longer than 16 bars: intro, the middle sections in turn, outro
FORMS = {"hiphop": (("intro", 4), (("verse", 8), ("hook", 8)), ("outro", 4)),
         "edm": (("intro", 8), (("build", 4), ("drop", 8), ("break", 8)), ("outro", 4)),
         "ambient": (("intro", 4), (("verse", 8), ("break", 8)), ("outro", 4)),
         "band": (("intro", 4), (("verse", 8), ("hook", 8)), ("outro", 4))}
SECTION_NAMES = ("loop", "intro", "verse", "hook", "drop", "build", "break", "outro")
# which parts play in each section (drums follow Bar.drums: sparse, full, build or none)
PLAYS = {"loop": {"drums", "bass", "808", "chords", "melody", "perc"},
         "intro": {"drums", "chords"},
         "verse": {"drums", "bass", "808", "chords", "melody", "perc"},
         "hook": {"drums", "bass", "808", "chords", "melody", "perc"},
         "drop": {"drums", "bass", "808", "chords", "melody", "perc"},
         "build": {"drums", "chords"},
         "break": {"chords", "melody"},
         "outro": {"drums", "bass", "808", "chords"}}


@dataclass(frozen=True)
class Note:
    start: float  # beats from the start
    length: float  # beats
    pitch: int
    velocity: int


@dataclass
class Composition:
    style: str
    key: Key
    bpm: float
    seed: int
    beats: float
    beats_per_bar: int = 4
    parts: dict[str, list[Note]] = field(default_factory=dict)
    programs: dict[str, int] = field(default_factory=dict)
    banks: dict[str, int] = field(default_factory=dict)
    channels: dict[str, int] = field(default_factory=dict)
    ctrl: dict[str, list[tuple]] = field(default_factory=dict)  # part -> (beat, 'bend', value) / (beat, 'cc', n, v)
    layers: dict[str, tuple] = field(default_factory=dict)  # part -> ((channel, bank, program, semis, cents, vel), …)
    brightness: dict[str, int] = field(default_factory=dict)  # part -> CC 74 at its start
    volumes: dict[str, int] = field(default_factory=dict)  # part -> CC 7 (the mix); 100 when not named
    progression: tuple = ()
    sections: list[tuple[str, int, int]] = field(default_factory=list)  # (name, first bar, bars)

    @property
    def seconds(self) -> float:
        return self.beats * 60.0 / self.bpm

    def describe_sections(self) -> list[dict]:
        spb = 60.0 / self.bpm * self.beats_per_bar
        return [{"name": n, "bar": b0 + 1, "bars": n_bars, "start_s": round(b0 * spb, 3)}
                for n, b0, n_bars in self.sections]

    def to_midi(self, parts: list[str] | None = None) -> mido.MidiFile:
        """A type-1 MIDI file: a tempo track, then one track per part."""
        mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
        meta = mido.MidiTrack()
        meta.append(mido.MetaMessage("track_name", name=f"jackgen {self.style} {self.key.name} seed {self.seed}", time=0))
        meta.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(self.bpm), time=0))
        meta.append(mido.MetaMessage("time_signature", numerator=self.beats_per_bar, denominator=4, time=0))
        spb = TICKS_PER_BEAT * self.beats_per_bar
        now = 0
        for name, b0, _ in self.sections if len(self.sections) > 1 else ():  # a marker where each section starts
            meta.append(mido.MetaMessage("marker", text=name, time=b0 * spb - now))
            now = b0 * spb
        end_tick = int(round(self.beats * TICKS_PER_BEAT))
        meta.append(mido.MetaMessage("end_of_track", time=max(0, end_tick - now)))
        mid.tracks.append(meta)
        for name in parts or list(self.parts):
            mid.tracks.append(self._track(name, end_tick))
        return mid

    def _track(self, name: str, end_tick: int) -> mido.MidiTrack:
        ch = self.channels[name]
        tr = mido.MidiTrack()
        tr.append(mido.MetaMessage("track_name", name=name, time=0))
        events: list[tuple[int, int, mido.Message]] = []
        voices = [(ch, self.banks.get(name, 0), self.programs[name], 0, 0, 1.0)] + list(self.layers.get(name, ()))
        bends = any(c[1] == "bend" for c in self.ctrl.get(name, ()))
        for vch, bank, program, semis, cents, vscale in voices:
            head = []
            if vch == DRUM_CHANNEL:
                if program:
                    head.append(mido.Message("program_change", channel=vch, program=program))
            else:
                if bank:
                    head.append(mido.Message("control_change", channel=vch, control=0, value=bank))
                head.append(mido.Message("program_change", channel=vch, program=program))
            head.append(mido.Message("control_change", channel=vch, control=7, value=self.volumes.get(name, 100)))
            if bends and vch == ch or cents:
                head += _bend_range(vch, BEND_RANGE if bends and vch == ch else 2)
            if name in self.brightness:
                head.append(mido.Message("control_change", channel=vch, control=74, value=self.brightness[name]))
            if cents:
                head.append(mido.Message("pitchwheel", channel=vch, pitch=int(round(cents / 200.0 * 8191))))
            for m in head:
                events.append((0, -1, m))
            for n in self.parts[name]:
                on = int(round(n.start * TICKS_PER_BEAT))
                off = min(end_tick, int(round((n.start + n.length) * TICKS_PER_BEAT)))
                if off <= on:
                    continue
                pitch = n.pitch + semis
                if not 0 <= pitch <= 127:
                    continue
                vel = int(np.clip(round(n.velocity * vscale), 1, 127))
                # note-offs sort before controllers before note-ons at the same tick: repeated notes retrigger,
                # and a slide's starting bend is in place before its note sounds
                events.append((on, 2, mido.Message("note_on", True, channel=vch, note=pitch, velocity=vel)))
                events.append((off, 0, mido.Message("note_off", True, channel=vch, note=pitch, velocity=0)))
            if vch == ch:
                for c in self.ctrl.get(name, ()):
                    tick = min(end_tick, int(round(c[0] * TICKS_PER_BEAT)))
                    if c[1] == "bend":
                        msg = mido.Message("pitchwheel", True, channel=vch, pitch=int(min(8191, max(-8192, c[2]))))
                    else:
                        msg = mido.Message("control_change", True, channel=vch, control=int(c[2]),
                                           value=int(min(127, max(0, c[3]))))
                    events.append((tick, 1, msg))
        events.sort(key=lambda e: (e[0], e[1], getattr(e[2], "note", 0), e[2].channel))
        now = 0
        for tick, _, msg in events:  # every value was range-checked when the message was made
            msg.time = tick - now
            tr.append(msg)
            now = tick
        tr.append(mido.MetaMessage("end_of_track", time=max(0, end_tick - now)))
        return tr

    def stem_paths(self, folder: str | Path) -> dict[str, Path]:
        return {name: Path(folder) / f"{name}.mid" for name in list(self.parts) + ["full"]}

    def write_midi(self, path: Path, parts: list[str] | None = None) -> mido.MidiFile:
        """Write ``to_midi(parts)`` to ``path`` (whole or not at all) and return it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        mid = self.to_midi(parts)
        mid.save(str(tmp))
        tmp.replace(path)
        return mid

    def write_stems(self, folder: str | Path, only: list[str] | None = None) -> dict[str, Path]:
        """One .mid per part plus ``full.mid`` (all parts) in ``folder`` (or the ``only`` ones); returns
        name → path."""
        paths = self.stem_paths(folder)
        for name in only or list(paths):
            self.write_midi(paths[name], None if name == "full" else [name])
        return {name: paths[name] for name in only or list(paths)}


def _bend_range(ch: int, semitones: int) -> list[mido.Message]:
    """RPN 0 (pitch-bend sensitivity), then the null RPN so later data entry changes nothing."""
    cc = [(101, 0), (100, 0), (6, semitones), (38, 0), (101, 127), (100, 127)]
    return [mido.Message("control_change", channel=ch, control=c, value=v) for c, v in cc]


def _scale(key: Key) -> tuple[int, ...]:
    return MINOR if key.minor else MAJOR


def _degree_pitch(key: Key, degree: int, octave: int) -> int:
    """MIDI pitch of a scale degree (0-based, may exceed 6) in the octave of C``octave``."""
    scale = _scale(key)
    o, d = divmod(degree, 7)
    return 12 * (octave + 1 + o) + key.tonic + scale[d]


def plan_sections(bars: int, family: str, structure=None) -> list[tuple[str, int, int]]:
    """(section, first bar, bars) covering ``bars``: the asked structure (repeated, cut at the end), else one
    loop up to 16 bars, else the genre family's form."""
    plan: list[tuple[str, int]] = []
    if structure:
        while sum(b for _, b in plan) < bars:
            plan.extend(structure)
    elif bars <= 16:
        plan = [("loop", bars)]
    else:
        intro, middle, outro = FORMS[family]
        if family == "edm" and bars < 32:
            intro = ("intro", 4)
        plan = [intro]
        left, i = bars - intro[1] - outro[1], 0
        while left > 0:
            name, n = middle[i % len(middle)]
            if left - n < 2 and i > 0 and left < n:  # a scrap shorter than 2 bars: the section before runs on
                if left < 2:
                    plan[-1] = (plan[-1][0], plan[-1][1] + left)
                    break
            plan.append((name, min(n, left)))
            left -= min(n, left)
            i += 1
        plan.append(outro)
    out, start = [], 0
    for name, n in plan:
        n = min(n, bars - start)
        if n <= 0:
            break
        out.append((name, start, n))
        start += n
    return out


def compose(style: str, key: str | Key | None, bpm: float | None, seed: int, duration_s: float,
            structure=None, flags=()) -> Composition:
    genre = canonical_genre(style) or style
    g, st = GENRES[genre], STYLES[genre]
    flags = frozenset(flags)
    k = key if isinstance(key, Key) else parse_key(key or g.key)
    tempo = float(bpm or g.bpm)
    rng = np.random.Generator(np.random.PCG64(int(seed)))
    beats = duration_s * tempo / 60.0
    bars = max(1, int(math.ceil(beats / 4.0 - 1e-9)))
    progs = st.minor_progressions if k.minor else st.major_progressions
    prog = progs[int(rng.integers(len(progs)))]
    hook_prog = progs[int(rng.integers(len(progs)))]
    variants = {name: int(rng.integers(G.N_VARIANTS)) for name in SECTION_NAMES}
    sections = plan_sections(bars, g.family, structure)
    names = _part_names(genre, st, flags)
    comp = Composition(genre, k, tempo, int(seed), beats, progression=prog, sections=sections)
    comp.channels = {n: CHANNELS[n] for n in names}
    progs_of = dict(st.programs)
    if "808" in names and "808" not in progs_of:
        progs_of["808"] = G.SINE
    for flag, (part, prog_) in G.FLAG_PROGRAMS.items():
        if flag in flags and part in progs_of:
            progs_of[part] = prog_
    comp.programs = {n: (st.kit if n in ("drums", "perc") else progs_of[n][1]) for n in names}
    comp.banks = {n: progs_of[n][0] for n in names if n not in ("drums", "perc")}
    bass_name = "808" if "808" in names else "bass"
    if bass_name in names and bass_name in st.layers:
        comp.layers[bass_name] = tuple((LAYER_CHANNELS[i], b, p, semis, cents, vs)
                                       for i, ((b, p), semis, cents, vs) in enumerate(st.layers[bass_name]))
    comp.brightness = {n: v for n, v in st.brightness.items() if n in names}
    comp.volumes = {n: v for n, v in st.volumes.items() if n in names}
    swing = st.swing

    def at(bar: int, step: float) -> float:
        """Beat position of a 16th step in a bar, with swing on the off-beat 8ths (or 16ths)."""
        beat = bar * 4 + step / 4.0
        if swing != 0.5 and float(step).is_integer():
            if st.swing16 and int(step) % 2 == 1:
                beat += (swing - 0.5) * 0.5
            elif not st.swing16 and int(step) % 4 == 2:
                beat += (swing - 0.5)
        return beat

    parts: dict[str, list[Note]] = {n: [] for n in names}
    ctrl: dict[str, list[tuple]] = {n: [] for n in names}
    bar_section = [(name, bar - b0, n) for name, b0, n in sections for bar in range(b0, b0 + n)]
    last_bass: list[int] = []
    wobble_rates = (1.0, 0.5, 1.0 / 3.0, 0.25)  # beats per filter cycle: quarters, 8ths, 8th triplets, 16ths
    for bar in range(bars):
        sec, pos, length = bar_section[bar]
        p = hook_prog if sec in ("hook", "drop") else prog
        degree = p[pos % len(p)]
        if bar == bars - 1 and bars > 1:
            degree = 0  # end on the tonic
        nxt = p[(pos + 1) % len(p)]
        b = G.Bar(bar, sec, pos, length, degree, nxt, rng, flags, variants[sec])
        plays = PLAYS[sec]
        hits = G.drums(genre, b) if "drums" in names else []
        if "drums" in names and "drums" in plays:
            parts["drums"] += [Note(at(bar, s), 0.25, note, int(np.clip(v, 1, 127))) for s, note, v in hits]
        if "perc" in names and "perc" in plays:
            parts["perc"] += [Note(at(bar, s), 0.25, note, int(np.clip(v, 1, 127))) for s, note, v in G.perc(genre, b)]
        kicks = sorted({s for s, note, _ in hits if note == G.KICK}) or list(G.KICKS.get(genre, ((0, 10),))[0])
        if bass_name in names and bass_name in plays:
            root = _bass_root(k, degree, bass_name == "808", st.bass_octave)
            notes = G.bass(genre, b, root, kicks)
            _place_bass(parts[bass_name], ctrl[bass_name], notes, bar, at, last_bass, mono=bass_name == "808")
            if st.wobble and bass_name == "bass" and sec in ("drop", "hook", "loop", "verse"):
                rate = wobble_rates[int(rng.integers(len(wobble_rates)))] if b.lift else 1.0
                _wobble(ctrl[bass_name], bar * 4.0, 4.0, rate)
        if "chords" in names and "chords" in plays:
            parts["chords"] += _chords(k, st, degree, bar, at, sec, flags)
    if "melody" in names:
        octave = st.melody_octave - (1 if "dark" in flags and st.melody_octave > 4 else 0)
        active = {bar for bar, (sec, pos, _) in enumerate(bar_section)
                  if "melody" in PLAYS[sec] and (sec != "verse" or pos % 4 < 2)}
        parts["melody"] = [n for n in _melody(rng, k, prog, bars, st, at, octave) if int(n.start // 4) in active]
    end = comp.beats
    comp.parts = {name: [n for n in notes if n.start < end - 1e-6] for name, notes in parts.items()}
    comp.ctrl = {name: c for name, c in ctrl.items() if c}
    return comp


def _part_names(genre: str, st: G.Style, flags) -> list[str]:
    names = list(st.parts)
    if "808" in flags and "bass" in names:
        names[names.index("bass")] = "808"
    drop = set()
    if "no drums" in flags:
        drop |= {"drums", "perc"}
    if "no bass" in flags:
        drop |= {"bass", "808"}
    if "no melody" in flags:
        drop.add("melody")
    return [n for n in names if n not in drop] or ["chords"]


def _bass_root(k: Key, degree: int, is_808: bool, octave: int) -> int:
    if is_808:  # the 808 sits between E1 and D#2 (41–78 Hz): low enough to be felt, high enough to be heard
        pc = (k.tonic + _scale(k)[degree % 7]) % 12
        return 24 + pc + (12 if pc < 4 else 0)
    root = _degree_pitch(k, degree, octave)
    return root + 12 if root < 36 else root


def _place_bass(notes: list[Note], ctrl: list[tuple], bar_notes, bar: int, at, last: list[int], mono: bool) -> None:
    """Add one bar of bass; a slide starts bent to the last note's pitch and glides to its own."""
    bar_notes = sorted(bar_notes, key=lambda n: n[0])
    for i, (step, length, pitch, vel, slide) in enumerate(bar_notes):
        start = at(bar, step)
        if mono and i + 1 < len(bar_notes):
            length = min(length, bar_notes[i + 1][0] - step - 0.05)
        dur = max(0.1, length / 4.0)
        if mono and notes and notes[-1].start + notes[-1].length > start:  # one voice: cut the note before
            prev = notes[-1]
            notes[-1] = Note(prev.start, max(0.05, start - prev.start - 0.01), prev.pitch, prev.velocity)
        if slide and last:
            semis = int(np.clip(last[-1] - pitch, -BEND_RANGE, BEND_RANGE))
            glide = min(0.5, dur * 0.6)
            steps = 12
            for j in range(steps + 1):
                frac = j / steps
                ctrl.append((start + glide * frac, "bend", int(round(semis * (1 - frac) / BEND_RANGE * 8191))))
        notes.append(Note(start, dur, pitch, vel))
        last.append(pitch)
        del last[:-1]


def _wobble(ctrl: list[tuple], start: float, beats: float, rate: float) -> None:
    """CC 74 from closed to open and back every ``rate`` beats (16 points a cycle), then back to 64."""
    n = int(round(beats / rate * 16))
    for j in range(n):
        t = start + j * rate / 16.0
        phase = (j % 16) / 16.0
        ctrl.append((t, "cc", 74, int(round(64 * 0.5 * (1 - math.cos(2 * math.pi * phase))))))
    ctrl.append((start + beats - 0.01, "cc", 74, 64))


def _chords(k: Key, st: G.Style, degree: int, bar: int, at, sec: str, flags) -> list[Note]:
    voicing = [_degree_pitch(k, degree + t, 3) for t in st.chord_tones]
    voicing = sorted({p + 12 if p < 55 else p for p in voicing})
    if st.power_chords:
        r = _degree_pitch(k, degree, 3)
        r = r - 12 if r > 59 else r
        third = _degree_pitch(k, degree + 2, 4)  # root-fifth-octave plus the third: the mode stays audible
        voicing = [r, r + 7, r + 12, third if third > r + 12 else third + 12]
    rhythm = st.chord_rhythm
    if sec in ("intro", "break", "build") and len(rhythm) > 1 and not st.power_chords:
        rhythm = ((0, 15.6, 66),)  # held: the groove comes with the drums
    out = []
    for step, length, vel in rhythm:
        out.extend(Note(at(bar, step), length / 4.0 * 0.98, p, vel) for p in voicing)
    return out


def _melody(rng, k: Key, prog, bars: int, st: G.Style, at, octave: int) -> list[Note]:
    cells = st.melody_cells

    def phrase(degrees_of_bars: list[int], start_pitch_deg: int) -> list[tuple[int, int, int, int]]:
        """Two bars of (bar offset, step, length, scale degree)."""
        out = []
        deg = start_pitch_deg
        for b, chord_deg in enumerate(degrees_of_bars):
            cell = cells[int(rng.integers(len(cells)))]
            for step, length in cell:
                if step % 8 == 0:  # strong beat: a chord tone near the last note
                    cands = [chord_deg + t + 7 * o for t in (0, 2, 4) for o in (-1, 0, 1)]
                    deg = min(cands, key=lambda c: (abs(c - deg), c))
                else:
                    deg = int(np.clip(deg + int(rng.choice([-2, -1, -1, 1, 1, 2])), -3, 9))
                out.append((b, step, length, deg))
        return out

    notes: list[Note] = []
    a = phrase([prog[0], prog[1 % len(prog)]], 2)
    b_ = phrase([prog[2 % len(prog)], prog[3 % len(prog)]], 4)
    form = [a, a, b_, a]
    for p in range(0, bars, 2):
        ph = form[(p // 2) % 4]
        for (bo, step, length, deg) in ph:
            bar = p + bo
            if bar >= bars:
                continue
            if bar == bars - 1 and step >= 8:
                deg = 0 if deg < 4 else 7  # cadence on the tonic
            vel = int(np.clip(84 + rng.integers(-10, 11) + (8 if step % 8 == 0 else 0), 1, 127))
            notes.append(Note(at(bar, step), length / 4.0 * 0.92, _degree_pitch(k, deg, octave), vel))
    return notes

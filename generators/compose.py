"""The procedural composer: bpm, key, style and seed → General MIDI parts.

Deterministic by construction: every choice comes from one ``numpy`` PCG64
generator seeded with the job's seed, in a fixed order, so the same request
gives the same notes (and, rendered by FluidSynth, the same samples).

Four parts per piece, as a band would have them:

- ``drums`` on MIDI channel 10 (GM percussion), one pattern per style with
  seeded ghost notes and a fill every fourth bar,
- ``bass`` on the chord roots,
- ``chords`` voiced around middle C (sevenths for lofi, power chords for rock),
- ``melody`` in two-bar phrases (A A' B A'') that land chord tones on strong
  beats and end on the tonic.

Chord progressions are diatonic and start on the tonic, so the key is what a
listener (or a chroma-based key finder) hears.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import mido
import numpy as np

from jackgen.generators.job import Key, parse_key

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
DRUM_CHANNEL = 9  # MIDI channel 10
TICKS_PER_BEAT = 480

# GM percussion notes
KICK, RIM, SNARE, CLAP, HAT, OPEN_HAT, CRASH, SHAKER = 36, 37, 38, 39, 42, 46, 49, 70


@dataclass(frozen=True)
class Style:
    name: str
    bpm: float
    key: str
    swing: float  # fraction of an 8th pair given to the first 8th (0.5 = straight)
    programs: dict  # part -> GM program (0-based)
    major_progressions: tuple
    minor_progressions: tuple
    sevenths: bool = False
    power_chords: bool = False


STYLES: dict[str, Style] = {
    "lofi": Style("lofi", 82.0, "A minor", 0.58, {"bass": 33, "chords": 4, "melody": 11},
                  ((0, 5, 3, 4), (0, 3, 1, 4), (0, 4, 5, 3)),
                  ((0, 3, 6, 2), (0, 5, 3, 4), (0, 5, 2, 6)), sevenths=True),
    "house": Style("house", 124.0, "F minor", 0.5, {"bass": 38, "chords": 1, "melody": 80},
                   ((0, 4, 5, 3), (0, 5, 3, 4)),
                   ((0, 5, 2, 6), (0, 3, 5, 4), (0, 5, 3, 4))),
    "ambient": Style("ambient", 72.0, "D major", 0.5, {"bass": 39, "chords": 89, "melody": 46},
                     ((0, 3, 5, 4), (0, 5, 3, 0)),
                     ((0, 5, 3, 6), (0, 6, 5, 3))),
    "rock": Style("rock", 120.0, "E minor", 0.5, {"bass": 34, "chords": 30, "melody": 29},
                  ((0, 4, 5, 3), (0, 3, 4, 3), (0, 6, 3, 0)),
                  ((0, 5, 6, 0), (0, 2, 5, 6), (0, 5, 3, 4)), power_chords=True),
}


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
    channels: dict[str, int] = field(default_factory=dict)
    progression: tuple = ()

    @property
    def seconds(self) -> float:
        return self.beats * 60.0 / self.bpm

    def to_midi(self, parts: list[str] | None = None) -> mido.MidiFile:
        """A type-1 MIDI file: a tempo track, then one track per part."""
        mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
        meta = mido.MidiTrack()
        meta.append(mido.MetaMessage("track_name", name=f"jackgen {self.style} {self.key.name} seed {self.seed}", time=0))
        meta.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(self.bpm), time=0))
        meta.append(mido.MetaMessage("time_signature", numerator=self.beats_per_bar, denominator=4, time=0))
        end_tick = int(round(self.beats * TICKS_PER_BEAT))
        meta.append(mido.MetaMessage("end_of_track", time=end_tick))
        mid.tracks.append(meta)
        for name in parts or list(self.parts):
            ch = self.channels[name]
            tr = mido.MidiTrack()
            tr.append(mido.MetaMessage("track_name", name=name, time=0))
            if ch != DRUM_CHANNEL:
                tr.append(mido.Message("program_change", channel=ch, program=self.programs[name], time=0))
            tr.append(mido.Message("control_change", channel=ch, control=7, value=100, time=0))
            events: list[tuple[int, int, mido.Message]] = []
            for n in self.parts[name]:
                on = int(round(n.start * TICKS_PER_BEAT))
                off = min(end_tick, int(round((n.start + n.length) * TICKS_PER_BEAT)))
                if off <= on:
                    continue
                # note-offs sort before note-ons at the same tick, so repeated notes retrigger
                events.append((on, 1, mido.Message("note_on", channel=ch, note=n.pitch, velocity=n.velocity)))
                events.append((off, 0, mido.Message("note_off", channel=ch, note=n.pitch, velocity=0)))
            events.sort(key=lambda e: (e[0], e[1], e[2].note))
            now = 0
            for tick, _, msg in events:
                tr.append(msg.copy(time=tick - now))
                now = tick
            tr.append(mido.MetaMessage("end_of_track", time=max(0, end_tick - now)))
            mid.tracks.append(tr)
        return mid

    def write_stems(self, folder: str | Path) -> dict[str, Path]:
        """One .mid per part plus ``full.mid`` (all parts) in ``folder``; returns name → path."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        out = {}
        for name in list(self.parts) + ["full"]:
            path = folder / f"{name}.mid"
            tmp = path.with_name(f".{path.name}.tmp")
            self.to_midi(None if name == "full" else [name]).save(str(tmp))
            tmp.replace(path)
            out[name] = path
        return out


def _scale(key: Key) -> tuple[int, ...]:
    return MINOR if key.minor else MAJOR


def _degree_pitch(key: Key, degree: int, octave: int) -> int:
    """MIDI pitch of a scale degree (0-based, may exceed 6) in the octave of C``octave``."""
    scale = _scale(key)
    o, d = divmod(degree, 7)
    return 12 * (octave + 1 + o) + key.tonic + scale[d]


def compose(style: str, key: str | Key | None, bpm: float | None, seed: int, duration_s: float) -> Composition:
    st = STYLES[style]
    k = key if isinstance(key, Key) else parse_key(key or st.key)
    tempo = float(bpm or st.bpm)
    rng = np.random.Generator(np.random.PCG64(int(seed)))
    beats = duration_s * tempo / 60.0
    bars = int(np.ceil(beats / 4.0))
    progs = st.minor_progressions if k.minor else st.major_progressions
    prog = progs[int(rng.integers(len(progs)))]
    comp = Composition(style, k, tempo, int(seed), beats, progression=prog)
    comp.channels = {"drums": DRUM_CHANNEL, "bass": 0, "chords": 1, "melody": 2}
    comp.programs = {"drums": 0, **st.programs}
    swing = st.swing

    def at(bar: int, step16: float) -> float:
        """Beat position of a 16th step in a bar, with swing on the off-beat 8ths."""
        beat = bar * 4 + step16 / 4.0
        if swing != 0.5 and step16 % 4 == 2:
            beat += (swing - 0.5)
        return beat

    drums: list[Note] = []
    bass: list[Note] = []
    chords: list[Note] = []
    for bar in range(bars):
        degree = prog[bar % len(prog)]
        last_bar = bar == bars - 1
        if last_bar and bars > 1:
            degree = 0  # end on the tonic
        fill = bar % 4 == 3
        # ---- drums
        def hit(step: float, note: int, vel: int) -> None:
            drums.append(Note(at(bar, step), 0.25, note, int(np.clip(vel, 1, 127))))

        jitter = rng.integers(-8, 9, size=16)
        if style == "lofi":
            for s in (0, 10):
                hit(s, KICK, 100 + jitter[s])
            if rng.random() < 0.5:
                hit(7, KICK, 70)
            for s in (4, 12):
                hit(s, SNARE, 92 + jitter[s])
            for s in range(0, 16, 2):
                hit(s, HAT, 58 + jitter[s] + (10 if s % 4 == 0 else 0))
            if fill:
                hit(14, RIM, 60)
                hit(15, RIM, 50)
        elif style == "house":
            for s in (0, 4, 8, 12):
                hit(s, KICK, 112)
            for s in (4, 12):
                hit(s, CLAP, 96 + jitter[s])
            for s in (2, 6, 10, 14):
                hit(s, OPEN_HAT, 78 + jitter[s])
            for s in range(16):
                if s % 2 == 1:
                    hit(s, HAT, 44 + jitter[s])
            if fill:
                hit(14, CLAP, 80)
                hit(15, CLAP, 90)
        elif style == "rock":
            hit(0, KICK, 112)
            hit(8, KICK, 108)
            hit(10, KICK, 96)
            for s in (4, 12):
                hit(s, SNARE, 110 + jitter[s])
            for s in range(0, 16, 2):
                hit(s, HAT, 76 + jitter[s])
            if bar % 4 == 0:
                hit(0, CRASH, 100)
            if fill:
                for s in (13, 14, 15):
                    hit(s, SNARE, 80 + 10 * (s - 13))
        else:  # ambient: a soft pulse keeps time under the pads
            hit(0, KICK, 80)
            hit(8, KICK, 64)
            for s in range(0, 16, 2):
                hit(s, SHAKER, 52 + jitter[s] + (12 if s % 4 == 0 else 0))
        # ---- bass
        root = _degree_pitch(k, degree, 2)
        if root < 36:
            root += 12
        if style == "lofi":
            bass.append(Note(at(bar, 0), 1.4, root, 96))
            bass.append(Note(at(bar, 6), 0.4, root + 7, 80))
            bass.append(Note(at(bar, 8), 1.4, root, 90))
            if rng.random() < 0.6:
                bass.append(Note(at(bar, 14), 0.4, root + (12 if rng.random() < 0.5 else 10), 76))
        elif style == "house":
            for s in (2, 6, 10, 14):
                bass.append(Note(at(bar, s), 0.4, root + (12 if s == 10 and rng.random() < 0.5 else 0), 100))
        elif style == "rock":
            for s in range(0, 16, 2):
                bass.append(Note(at(bar, s), 0.45, root, 100 if s % 4 == 0 else 88))
        else:
            bass.append(Note(at(bar, 0), 3.9, root, 84))
        # ---- chords
        tones = [0, 2, 4, 6] if st.sevenths else [0, 2, 4]
        voicing = [_degree_pitch(k, degree + t, 3) for t in tones]
        voicing = [p + 12 if p < 55 else p for p in voicing]
        voicing = sorted(set(voicing))
        if st.power_chords:
            r = _degree_pitch(k, degree, 3)
            r = r - 12 if r > 59 else r
            third = _degree_pitch(k, degree + 2, 4)  # root-fifth-octave plus the third: the mode stays audible
            voicing = [r, r + 7, r + 12, third if third > r + 12 else third + 12]
            for s in range(0, 16, 2):
                chords.extend(Note(at(bar, s), 0.45, p, 92 if s % 4 == 0 else 80) for p in voicing)
        elif style == "lofi":
            chords.extend(Note(at(bar, 0), 2.3, p, 72) for p in voicing)
            chords.extend(Note(at(bar, 10), 1.3, p, 62) for p in voicing)
        elif style == "house":
            for s in (3, 6, 10, 14):
                chords.extend(Note(at(bar, s), 0.35, p, 84) for p in voicing)
        else:
            chords.extend(Note(at(bar, 0), 4.0, p, 70) for p in voicing)
    melody = _melody(rng, k, prog, bars, style, at)
    end = comp.beats
    comp.parts = {
        name: [n for n in notes if n.start < end - 1e-6]
        for name, notes in (("drums", drums), ("bass", bass), ("chords", chords), ("melody", melody))
    }
    return comp


# rhythm cells per bar: (start in 16ths, length in 16ths)
_RHYTHMS = {
    "lofi": (((0, 3), (4, 2), (6, 4), (12, 4)), ((2, 2), (4, 4), (10, 2), (12, 4)), ((0, 6), (8, 2), (10, 6))),
    "house": (((0, 2), (3, 2), (6, 2), (10, 2), (12, 4)), ((2, 2), (6, 2), (8, 4), (14, 2))),
    "ambient": (((0, 8), (8, 8)), ((0, 12), (12, 4)), ((4, 12),)),
    "rock": (((0, 4), (4, 2), (6, 2), (8, 4), (12, 4)), ((0, 2), (2, 2), (4, 4), (8, 8))),
}


def _melody(rng, k: Key, prog, bars: int, style: str, at) -> list[Note]:
    cells = _RHYTHMS[style]
    octave = 4 if style in ("rock",) else 5
    if style == "ambient":
        octave = 5

    def phrase(degrees_of_bars: list[int], start_pitch_deg: int) -> list[tuple[int, int, int, int]]:
        """Two bars of (bar offset, step, length, scale degree)."""
        out = []
        deg = start_pitch_deg
        for b, chord_deg in enumerate(degrees_of_bars):
            cell = cells[int(rng.integers(len(cells)))]
            for i, (step, length) in enumerate(cell):
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

"""How each genre plays: its drum kit and patterns, its bass, chord rhythm, instruments and swing.

Every pattern is written on a 16-step grid per 4/4 bar (steps may be fractional:
1/32 rolls are half steps, 16th triplets are thirds of a beat). ``drums`` and
``bass`` take a ``Bar`` (which bar, which section, how hard it plays, the chord
under it, the seeded generator) and return hits or notes; ``compose`` places
them, applies swing, and writes the pitch bends and controller sweeps.

Instruments are General MIDI programs (``(bank, program)``, 0-based), and drum
kits the GS kits FluidR3_GM really has on bank 128: Standard 0, Room 8, Power 16,
Electronic 24, TR-808 25, Jazz 32, Brush 40.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# GM percussion notes
KICK2, KICK, RIM, SNARE, CLAP, SNARE2, HAT, PEDAL_HAT, OPEN_HAT = 35, 36, 37, 38, 39, 40, 42, 44, 46
LOW_TOM, MID_TOM, HIGH_TOM, CRASH, RIDE, TAMBOURINE, COWBELL = 45, 47, 50, 49, 51, 54, 56
HI_CONGA, LOW_CONGA, CLAVES, SHAKER = 63, 64, 75, 70

KIT_STANDARD, KIT_ROOM, KIT_POWER, KIT_ELECTRONIC, KIT_808, KIT_JAZZ = 0, 8, 16, 24, 25, 32
SINE = (8, 80)  # bank 8 'Sine Wave': the 808 and sub-bass voice


@dataclass
class Bar:
    """One bar as a pattern function sees it."""

    index: int
    section: str  # intro, verse, hook, drop, build, break, outro, loop
    pos: int  # bar within its section
    length: int  # bars in the section
    degree: int  # chord degree (0 = tonic) under this bar
    next_degree: int
    rng: np.random.Generator
    flags: frozenset
    variant: int  # the pattern variant the seed chose for this section

    @property
    def last(self) -> bool:
        """The bar before a new section (or every 4th bar of one long loop): a fill goes here."""
        return self.pos == self.length - 1 and self.length >= 2 if self.section != "loop" else self.pos % 4 == 3

    @property
    def lift(self) -> bool:
        return self.section in ("hook", "drop", "loop")

    @property
    def drums(self) -> str | None:
        """'full', 'sparse', 'build' or None (no drums)."""
        return {"intro": "sparse", "outro": "sparse", "build": "build", "break": None}.get(self.section, "full")


@dataclass(frozen=True)
class Style:
    """A genre's sound. ``parts`` are its stems, in order; ``bass`` names its bass part ('bass' or '808')."""

    kit: int
    swing: float  # fraction of an 8th pair (or of a 16th pair, with swing16) given to the first
    programs: dict  # part -> (bank, program)
    major_progressions: tuple
    minor_progressions: tuple
    chord_rhythm: tuple  # (step, length in steps, velocity) per bar
    melody_cells: tuple  # rhythm cells: ((step, length), …) per bar
    parts: tuple = ("drums", "bass", "chords", "melody")
    swing16: bool = False
    chord_tones: tuple = (0, 2, 4)
    power_chords: bool = False
    melody_octave: int = 5
    bass_octave: int = 2
    layers: dict = field(default_factory=dict)  # part -> ((bank, program), semitones, cents, velocity scale), …
    wobble: bool = False  # the bass's filter opens and closes (CC 74) in note values
    brightness: dict = field(default_factory=dict)  # part -> CC 74 it starts with (64: the preset's own filter)
    volumes: dict = field(default_factory=dict)  # part -> CC 7, the mix (100 for a part not named)


MINOR_DARK = ((0, 5, 0, 6), (0, 0, 5, 4), (0, 3, 0, 5), (0, 5, 0, 4))  # loops that come home to i
STYLES: dict[str, Style] = {
    "trap": Style(KIT_808, 0.5, {"808": SINE, "chords": (0, 89), "melody": (0, 10)},
                  ((0, 5, 3, 4), (0, 3, 5, 4), (0, 4, 5, 3)), MINOR_DARK,
                  ((0, 16, 64),), (((0, 3), (3, 3), (6, 2), (10, 2), (12, 4)), ((0, 2), (4, 2), (8, 6)),
                                   ((2, 2), (6, 2), (8, 2), (11, 3), (14, 2))),
                  parts=("drums", "808", "chords", "melody"), melody_octave=5),
    "drill": Style(KIT_808, 0.5, {"808": SINE, "chords": (0, 49), "melody": (0, 14)},
                   ((0, 5, 3, 4), (0, 3, 4, 5)), ((0, 5, 0, 6), (0, 0, 5, 4), (0, 1, 0, 5), (0, 5, 0, 4)),
                   ((0, 8, 70), (8, 8, 66)), (((0, 3), (3, 3), (6, 2), (8, 6)), ((0, 4), (6, 2), (8, 2), (11, 5))),
                   parts=("drums", "808", "chords", "melody", "perc"), melody_octave=5,
                   volumes={"808": 90, "chords": 124, "melody": 110}),
    "boombap": Style(KIT_ROOM, 0.62, {"bass": (0, 33), "chords": (0, 0), "melody": (0, 59)},
                     ((0, 5, 1, 4), (0, 3, 1, 4)), ((0, 3, 6, 4), (0, 5, 3, 4), (0, 3, 4, 5)),
                     ((0, 3, 80), (3, 2, 62), (6, 4, 74), (11, 2, 60), (14, 2, 66)),
                     (((0, 4), (6, 2), (8, 4)), ((2, 2), (4, 4), (12, 4)), ((0, 6), (10, 6))),
                     swing16=True, chord_tones=(0, 2, 4, 6), melody_octave=4),
    "lofi": Style(KIT_STANDARD, 0.58, {"bass": (0, 33), "chords": (0, 4), "melody": (0, 11)},
                  ((0, 5, 3, 4), (0, 3, 1, 4), (0, 4, 5, 3)), ((0, 3, 6, 2), (0, 5, 3, 4), (0, 5, 2, 6)),
                  ((0, 9, 72), (10, 5, 62)),
                  (((0, 3), (4, 2), (6, 4), (12, 4)), ((2, 2), (4, 4), (10, 2), (12, 4)), ((0, 6), (8, 2), (10, 6))),
                  chord_tones=(0, 2, 4, 6)),
    "house": Style(KIT_STANDARD, 0.5, {"bass": (0, 38), "chords": (0, 1), "melody": (0, 80)},
                   ((0, 4, 5, 3), (0, 5, 3, 4)), ((0, 5, 2, 6), (0, 3, 5, 4), (0, 5, 3, 4)),
                   ((3, 1.4, 84), (6, 1.4, 84), (10, 1.4, 84), (14, 1.4, 84)),
                   (((0, 2), (3, 2), (6, 2), (10, 2), (12, 4)), ((2, 2), (6, 2), (8, 4), (14, 2))),
                   parts=("drums", "bass", "chords", "melody", "perc")),
    "techno": Style(KIT_808, 0.5, {"bass": (0, 39), "chords": (0, 89), "melody": (0, 81)},
                    ((0, 0, 5, 4), (0, 3, 0, 4)), ((0, 0, 4, 0), (0, 5, 0, 4), (0, 3, 4, 0)),
                    ((0, 16, 88),), (((0, 1), (2, 1), (3, 1), (6, 1), (8, 1), (10, 1), (11, 1), (14, 1)),
                                     ((0, 1), (3, 1), (6, 1), (8, 1), (11, 1), (14, 1))),
                    parts=("drums", "bass", "chords", "melody", "perc"), melody_octave=4,
                    brightness={"bass": 10}, volumes={"drums": 80, "bass": 84, "chords": 127, "melody": 110}),
    "dnb": Style(KIT_STANDARD, 0.5, {"bass": (0, 81), "chords": (0, 89), "melody": (0, 50)},
                 ((0, 5, 3, 4), (0, 3, 5, 4)), ((0, 0, 5, 4), (0, 3, 0, 5), (0, 5, 3, 4)),
                 ((0, 16, 60),), (((0, 8), (8, 8)), ((0, 6), (6, 2), (8, 8)), ((4, 12),)),
                 layers={"bass": (((0, 81), 0, 14, 0.9), (SINE, -12, 0, 1.0))}, melody_octave=5,
                 brightness={"bass": 24}),
    "dubstep": Style(KIT_POWER, 0.5, {"bass": (0, 81), "chords": (0, 90), "melody": (0, 80)},
                     ((0, 5, 3, 4),), ((0, 5, 6, 4), (0, 3, 6, 4), (0, 1, 5, 4)),
                     ((0, 16, 56),), (((0, 4), (6, 2), (8, 8)), ((0, 8), (10, 6))),
                     layers={"bass": ((SINE, -12, 0, 1.0),)}, wobble=True, melody_octave=5),
    "breakbeat": Style(KIT_ROOM, 0.54, {"bass": (0, 36), "chords": (0, 28), "melody": (0, 61)},
                       ((0, 3, 4, 3), (0, 5, 3, 4)), ((0, 3, 0, 4), (0, 3, 6, 4), (0, 5, 3, 4)),
                       ((2, 1, 82), (6, 1, 76), (10, 1, 82), (13, 1, 70), (14, 1, 78)),
                       (((0, 2), (3, 1), (4, 2), (8, 3), (12, 4)), ((2, 2), (6, 1), (7, 3), (12, 2), (14, 2))),
                       parts=("drums", "bass", "chords", "melody", "perc"), swing16=True,
                       chord_tones=(0, 2, 4, 6), melody_octave=4),
    "ambient": Style(KIT_STANDARD, 0.5, {"bass": (0, 39), "chords": (0, 89), "melody": (0, 46)},
                     ((0, 3, 5, 4), (0, 5, 3, 0)), ((0, 5, 3, 6), (0, 6, 5, 3)),
                     ((0, 16, 70),), (((0, 8), (8, 8)), ((0, 12), (12, 4)), ((4, 12),))),
    "rock": Style(KIT_STANDARD, 0.5, {"bass": (0, 34), "chords": (0, 30), "melody": (0, 29)},
                  ((0, 4, 5, 3), (0, 3, 4, 3), (0, 6, 3, 0)), ((0, 5, 6, 0), (0, 2, 5, 6), (0, 5, 3, 4)),
                  tuple((s, 1.8, 92 if s % 4 == 0 else 80) for s in range(0, 16, 2)),
                  (((0, 4), (4, 2), (6, 2), (8, 4), (12, 4)), ((0, 2), (2, 2), (4, 4), (8, 8))),
                  power_chords=True, melody_octave=4),
}

# the instruments a prompt's words ask for
FLAG_PROGRAMS = {"strings": ("chords", (0, 48)), "pads": ("chords", (0, 89)), "piano": ("chords", (0, 0)),
                 "rhodes": ("chords", (0, 4)), "guitar": ("chords", (0, 27)), "bells": ("melody", (0, 9))}
N_VARIANTS = 4


# ------------------------------------------------------------------ drums
Hit = tuple  # (step, note, velocity)


def _hats(b: Bar, every: float, vel: int, accent: int = 10, start: float = 0.0) -> list[Hit]:
    """Hats every ``every`` steps, accented on the beat (and a little on the 8th): the pulse is in them."""
    out, s = [], start
    while s < 16 - 1e-6:
        acc = accent if abs(s % 4) < 1e-6 else accent // 3 if abs(s % 2) < 1e-6 else -accent // 3
        out.append((s, HAT, vel + acc + int(b.rng.integers(-4, 5))))
        s += every
    return out


def _roll(b: Bar, at: float, span: float, kind: int) -> list[Hit]:
    """A hi-hat roll from step ``at`` over ``span`` steps: 1/32 (kind 0), 16th triplets (1) or 1/64 (2)."""
    step = (0.5, 2.0 / 3.0, 0.25)[kind]
    n = int(round(span / step))
    return [(at + i * step, HAT, int(46 + 34 * i / max(1, n - 1))) for i in range(n)]


def _with_rolls(b: Bar, hats: list[Hit], chance: float) -> list[Hit]:
    if "hat rolls" in b.flags:
        chance = 1.0
    out = hats
    for region in ((4.0, 8.0), (12.0, 16.0)):
        if b.rng.random() < chance:
            span = (2.0, 4.0)[int(b.rng.integers(2))]
            at = region[1] - span - (2.0 if span == 2.0 and b.rng.random() < 0.5 else 0.0)
            kind = int(b.rng.choice(3, p=(0.5, 0.3, 0.2)))
            out = [h for h in out if not (at - 1e-6 <= h[0] < at + span - 1e-6)] + _roll(b, at, span, kind)
    return out


def _build(b: Bar, note: int) -> list[Hit]:
    """A riser: the snare in quarters, then 8ths, 16ths, 32nds, louder to the section's end."""
    frac = (b.pos + 1) / max(1, b.length)
    every = 4.0 if frac <= 0.25 else 2.0 if frac <= 0.5 else 1.0 if frac < 1.0 else 0.5
    out, s = [], 0.0
    while s < 16:
        out.append((s, note, int(50 + 70 * (b.pos + s / 16) / max(1, b.length))))
        s += every
    return out + [(s, KICK, 100) for s in (0, 4, 8, 12)]


def _fill(b: Bar, toms: bool = True) -> list[Hit]:
    kind = int(b.rng.integers(3))
    if kind == 0 and toms:
        return [(12, HIGH_TOM, 96), (13, HIGH_TOM, 90), (14, MID_TOM, 100), (15, LOW_TOM, 108)]
    if kind == 1:
        return [(s, SNARE, 70 + 8 * i) for i, s in enumerate((12, 13, 14, 14.5, 15, 15.5))]
    return [(13, SNARE, 84), (14, SNARE, 96), (15, CLAP, 104)]


KICKS = {
    "trap": ((0, 10), (0, 7, 10), (0, 10, 11), (0, 3, 10)),
    "drill": ((0, 6, 11), (0, 3, 7, 11), (0, 7, 10, 13), (0, 6, 9, 14)),
    "boombap": ((0, 7, 10), (0, 3, 10), (0, 10, 11), (0, 2, 10, 15)),
    "dnb": ((0, 10), (0, 10, 11), (0, 7, 10), (0, 2, 10)),
    "breakbeat": ((0, 2, 10), (0, 3, 10, 11), (0, 6, 10), (0, 2, 7, 10)),
    "dubstep": ((0,), (0, 3), (0, 11), (0, 3, 14)),
    "rock": ((0, 8, 10), (0, 7, 8), (0, 3, 8, 10), (0, 8, 10, 14)),
    "ambient": ((0, 8), (0,), (0, 10), (0, 6, 8)),
}


def drums(genre: str, b: Bar) -> list[Hit]:
    mode = b.drums
    if mode is None:
        return []
    r = b.rng
    v = r.integers(-8, 9, size=16)
    hard = 16 if "hard kick" in b.flags else 0
    punch = 10 if "punchy" in b.flags else 0
    if mode == "build":
        return _build(b, CLAP if genre in ("trap", "drill", "house", "techno") else SNARE)
    out: list[Hit] = []
    kick_var = KICKS.get(genre, ((0,),))[b.variant % len(KICKS.get(genre, ((0,),)))]
    sparse = mode == "sparse"
    if genre in ("trap", "drill"):
        if not sparse:
            out += [(s, KICK, 110 + hard + v[int(s)] // 2) for s in kick_var]
            out += [(8, CLAP, 108 + punch), (8, SNARE, 84 + punch)]  # half time: the backbeat on 3
            if genre == "drill" and r.random() < 0.6:
                out.append((15 if r.random() < 0.5 else 13, SNARE, 92))
        if genre == "trap":
            hats = _hats(b, (2.0, 1.0)[b.variant % 2], 96, 24)
            out += hats if sparse else _with_rolls(b, hats, 0.5 if b.lift else 0.3)
            if not sparse and r.random() < 0.35:
                out.append((14, OPEN_HAT, 76))
        else:  # drill: the hats sit on 8th-note triplets, with gaps
            hats = [(i * 4 / 3, HAT, 70 + (14 if i % 3 == 0 else 0) + int(r.integers(-6, 7)))
                    for i in range(12) if i % 3 != 2 or r.random() < 0.5]
            out += hats if sparse else _with_rolls(b, hats, 0.45 if b.lift else 0.25)
    elif genre == "boombap":
        out += [(s, KICK, 108 + hard + v[int(s)]) for s in kick_var] if not sparse else [(0, KICK, 100)]
        out += [(4, SNARE, 110 + punch + v[4]), (12, SNARE, 112 + punch + v[12])]
        out += [(s, SNARE, 38 + int(r.integers(0, 12))) for s in (7, 15) if r.random() < 0.5]  # ghost notes
        ghost = (40, 54)[b.variant % 2]  # the swung odd 16ths: ghosted or half-open, by variant
        out += [(s, HAT, (64 + (14 if s % 4 == 0 else 0) if s % 2 == 0 else ghost) + v[s]) for s in range(16)]
        if r.random() < 0.3:
            out.append((10, OPEN_HAT, 70))
    elif genre == "lofi":
        out += [(0, KICK, 100 + hard + v[0]), (10, KICK, 100 + hard + v[10])]
        if r.random() < 0.5:
            out.append((7, KICK, 70))
        out += [(4, SNARE, 92 + punch + v[4]), (12, SNARE, 92 + punch + v[12])]
        out += [(s, HAT, 58 + v[s] + (10 if s % 4 == 0 else 0)) for s in range(0, 16, 2)]
        if b.last:
            out += [(14, RIM, 60), (15, RIM, 50)]
    elif genre in ("house", "techno"):
        out += [(s, KICK, 112 + hard) for s in (0, 4, 8, 12)]
        if not sparse:
            if genre == "house" or b.variant % 2 == 0:
                out += [(4, CLAP, 96 + punch + v[4]), (12, CLAP, 96 + punch + v[12])]
            out += [(s, OPEN_HAT, 78 + v[s]) for s in (2, 6, 10, 14)]
        every = 2 if genre == "house" else 1
        out += [(s, HAT, 44 + v[s]) for s in range(1 if genre == "house" else 0, 16, every) if s % 4 != 2]
    elif genre == "dnb":
        if not sparse:
            out += [(s, KICK, 112 + hard) for s in kick_var]
            out += [(4, SNARE, 112 + punch), (12, SNARE, 112 + punch)]
            out += [(s, SNARE, 40 + int(r.integers(0, 14))) for s in (7, 9, 15) if r.random() < 0.45]
        out += [(s, HAT, 62 + v[s] + (12 if s % 4 == 2 else 0)) for s in range(0, 16, 2)]
        if b.lift:
            out += [(s, RIDE, 50 + v[s]) for s in range(1, 16, 2)]
    elif genre == "dubstep":
        if not sparse:
            out += [(s, KICK, 114 + hard) for s in kick_var]
            out += [(8, SNARE, 118 + punch), (8, CLAP, 90)]
        out += [(s, HAT, 60 + v[s]) for s in range(0, 16, 2)]
        if b.lift and r.random() < 0.5:
            out = _with_rolls(b, out, 0.4)
    elif genre == "breakbeat":
        if not sparse:
            out += [(s, KICK, 106 + hard + v[int(s)]) for s in kick_var]
            out += [(4, SNARE, 108 + punch), (12, SNARE, 108 + punch)]
            out += [(s, SNARE, 36 + int(r.integers(0, 16))) for s in (1, 7, 9, 15) if r.random() < 0.55]
        out += [(s, HAT, 54 + v[s] + (18 if s % 2 == 0 else 0)) for s in range(16)]
        if r.random() < 0.5:
            out = [h for h in out if not (h[1] == HAT and h[0] == 6)] + [(6, OPEN_HAT, 72)]
    elif genre == "rock":
        out += [(s, KICK, (112 if s == 0 else 102) + hard) for s in kick_var]
        out += [(4, SNARE, 110 + punch + v[4]), (12, SNARE, 110 + punch + v[12])]
        out += [(s, HAT, 76 + v[s]) for s in range(0, 16, 2)]
        if b.pos == 0 or b.index % 4 == 0:
            out.append((0, CRASH, 100))
        if b.last:
            out = [h for h in out if h[0] < 12 or h[1] == KICK] + _fill(b)
    else:  # ambient: a soft pulse keeps time under the pads
        out += [(s, KICK, 80 if s == 0 else 64) for s in kick_var]
        every = (2, 2, 4, 1)[b.variant % 4]
        out += [(s, SHAKER, 52 + v[s] + (12 if s % 4 == 0 else 0)) for s in range(0, 16, every)
                if s % 4 == 0 or r.random() < 0.7]  # a shaker that breathes: seeds differ in where
    if "hard kick" in b.flags:
        out += [(h[0], KICK2, min(127, h[2])) for h in out if h[1] == KICK]
    if b.last and not sparse and genre not in ("lofi", "rock", "ambient"):
        out = [h for h in out if h[0] < 12 or h[1] in (HAT, KICK)] + _fill(b, genre not in ("trap", "drill"))
    if b.pos == 0 and b.section in ("hook", "drop", "verse") and b.index > 0 and genre != "rock":
        out.append((0, CRASH, 96))
    return out


def perc(genre: str, b: Bar) -> list[Hit]:
    """The extra percussion stem: shakers, congas, rims, claves."""
    if b.drums != "full":
        return []
    r = b.rng
    if genre == "house":
        return [(s, SHAKER, 50 + (16 if s % 2 else 0)) for s in range(16)] + [(7, HI_CONGA, 70), (10, LOW_CONGA, 74)]
    if genre == "techno":
        return [(s, RIM, 62 + int(r.integers(0, 16))) for s in (3, 6, 11, 14) if r.random() < 0.8]
    if genre == "drill":
        return [(s, RIM, 70) for s in (3, 10, 14) if r.random() < 0.7] + [(6, CLAVES, 62)]
    if genre == "breakbeat":
        return [(s, TAMBOURINE, 58) for s in (4, 12)] + [(s, HI_CONGA if s % 4 else LOW_CONGA, 72)
                                                         for s in (2, 7, 11, 14) if r.random() < 0.7]
    return [(s, SHAKER, 54) for s in range(0, 16, 2)]


# ------------------------------------------------------------------ bass
def bass(genre: str, b: Bar, root: int, kicks: list[float]) -> list[tuple[float, float, int, int, bool]]:
    """(step, length in steps, pitch, velocity, slide into it) for one bar; ``root`` is the chord root."""
    r = b.rng
    if genre in ("trap", "drill") or "808" in b.flags:
        return _808(genre, b, root, kicks)
    if genre == "lofi":
        out = [(0, 5.6, root, 96, False), (6, 1.6, root + 7, 80, False), (8, 5.6, root, 90, False)]
        if r.random() < 0.6:
            out.append((14, 1.6, root + (12 if r.random() < 0.5 else 10), 76, False))
        return out
    if genre == "boombap":
        return [(s, 2.6 if s < 12 else 1.6, root + (7 if i == 1 and r.random() < 0.4 else 0), 98, False)
                for i, s in enumerate(kicks or (0, 10))]
    if genre == "house":
        return [(s, 1.6, root + (12 if s == 10 and r.random() < 0.5 else 0), 100, False) for s in (2, 6, 10, 14)]
    if genre == "techno":  # rolling: the three 16ths after every kick
        return [(s, 0.8, root + (12 if s % 4 == 3 and r.random() < 0.3 else 0), 92 + (8 if s % 4 == 2 else 0), False)
                for s in range(16) if s % 4]
    if genre == "dnb":  # reese: long notes, moving on the half bar
        nxt = root + (int(r.choice([7, 12, -5])) if r.random() < 0.6 else 0)
        return [(0, 7.8, root, 104, False), (8, 7.8, nxt, 100, False)]
    if genre == "dubstep":
        return [(0, 7.8, root, 110, False), (8, 7.8, root + (r.choice([0, 3, 5, 7, -2]) if b.lift else 0), 110, False)]
    if genre == "breakbeat":  # slap: syncopated 16ths with octave pops
        out = []
        for s in (0, 3, 6, 8, 10, 11, 14):
            if s in (0, 8) or r.random() < 0.7:
                out.append((s, 0.9, root + (12 if s in (6, 14) else 0), 104 if s in (6, 14) else 96, False))
        return out
    if genre == "rock":
        return [(s, 1.8, root, 100 if s % 4 == 0 else 88, False) for s in range(0, 16, 2)]
    return [(0, 15.6, root, 84, False)]


def _808(genre: str, b: Bar, root: int, kicks: list[float]) -> list[tuple[float, float, int, int, bool]]:
    """808 notes on the kicks, each held to the next; some slide in from the last pitch (a pitch bend)."""
    r = b.rng
    starts = sorted(set(kicks or (0, 10)))
    slide_p = (0.5 if genre == "drill" else 0.35) + (0.2 if "808" in b.flags else 0.0)
    out = []
    for i, s in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else 16.0
        pitch = root
        slide = False
        if i > 0 and r.random() < slide_p:
            pitch = root + int(r.choice([12, 7, -5, 12, 7]))  # jump an octave or a fifth and glide there
            slide = True
        out.append((s, max(1.0, end - s - 0.1), pitch, 112, slide))
    if b.last and r.random() < 0.7:  # a slide into the next bar's root
        out.append((14, 1.9, root + 12, 104, True))
    return out

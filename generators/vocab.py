"""The words of music a job is written in: keys, genres and their spellings, song sections.

Shared by the job's validation (``job``), the prompt reader (``prompt``) and the
composer (``compose``, ``genres``), so a genre spelled ``boom-bap`` in a job's
``style``, ``boom bap`` in a prompt and ``boombap`` in a take's JSON are one genre.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class JobError(ValueError):
    """A job request that cannot be run; the message says what to change."""


# How each key is spelled on a chart: the usual flats and sharps (Eb major, not D# major)
MAJOR_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MINOR_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")
PITCH = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_KEY_RE = re.compile(r"^\s*([A-Ga-g])\s*([#♯b♭]|sharp|flat)?\s*(major|maj|minor|min|m|M)?\s*$")


@dataclass(frozen=True)
class Key:
    tonic: int  # pitch class 0 = C
    minor: bool

    @property
    def name(self) -> str:
        return f"{MINOR_NAMES[self.tonic]} minor" if self.minor else f"{MAJOR_NAMES[self.tonic]} major"

    @property
    def relative(self) -> Key:
        return Key((self.tonic + 3) % 12, False) if self.minor else Key((self.tonic + 9) % 12, True)


def accidental(acc: str | None) -> int:
    if acc in ("#", "♯", "sharp"):
        return 1
    if acc in ("b", "♭", "flat"):
        return -1
    return 0


def parse_key(text: str) -> Key:
    """'A minor', 'Am', 'F# major', 'Bb', 'eb min', 'C sharp minor' → Key. Plain 'C' means C major."""
    m = _KEY_RE.match(text or "") if isinstance(text, str) else None
    if not m:
        raise JobError(f"key {text!r} is not a key: write it like 'A minor', 'F# major', 'Bb' or 'C#m'")
    letter, acc, mode = m.groups()
    pc = PITCH[letter.upper()] + accidental(acc)
    return Key(pc % 12, mode in ("minor", "min", "m"))


@dataclass(frozen=True)
class Genre:
    """What a genre means before any note is written: its tempo and key when none is asked for."""

    name: str
    title: str  # how MusicGen and people read it
    bpm: float  # default tempo
    bpm_range: tuple[float, float]
    key: str  # default key
    family: str  # "hiphop", "edm", "band", "ambient": the default song form for long takes


GENRES: dict[str, Genre] = {g.name: g for g in (
    Genre("trap", "trap", 140.0, (130.0, 150.0), "F# minor", "hiphop"),
    Genre("drill", "drill", 144.0, (140.0, 150.0), "C# minor", "hiphop"),
    Genre("boombap", "boom bap hip hop", 90.0, (85.0, 95.0), "D minor", "hiphop"),
    Genre("lofi", "lofi hip hop", 82.0, (70.0, 90.0), "A minor", "hiphop"),
    Genre("house", "house", 124.0, (120.0, 128.0), "F minor", "edm"),
    Genre("techno", "techno", 128.0, (124.0, 132.0), "A minor", "edm"),
    Genre("dnb", "drum and bass", 174.0, (170.0, 176.0), "E minor", "edm"),
    Genre("dubstep", "dubstep", 140.0, (138.0, 142.0), "F minor", "edm"),
    Genre("breakbeat", "funk breakbeat", 105.0, (95.0, 115.0), "E minor", "edm"),
    Genre("ambient", "ambient chillwave", 72.0, (60.0, 90.0), "D major", "ambient"),
    Genre("rock", "rock", 120.0, (100.0, 140.0), "E minor", "band"),
)}

EDM_DEFAULT = "house"  # a prompt that says only 'edm' (or 'dance', 'club') gets house

# Spellings a producer writes, longest first when read from a prompt. Each maps to a genre.
ALIASES: dict[str, str] = {
    "trap": "trap", "trap beat": "trap", "trapsoul": "trap", "rage": "trap", "808": "trap",
    "drill": "drill", "uk drill": "drill", "ny drill": "drill", "chicago drill": "drill", "brooklyn drill": "drill",
    "boombap": "boombap", "boom bap": "boombap", "boom-bap": "boombap", "boom bop": "boombap",
    "hip hop": "boombap", "hip-hop": "boombap", "hiphop": "boombap", "golden era": "boombap", "rap": "boombap",
    "90s hip hop": "boombap",
    "lofi": "lofi", "lo-fi": "lofi", "lo fi": "lofi", "chillhop": "lofi", "chill hop": "lofi", "chill": "lofi",
    "jazzy": "lofi", "study": "lofi", "mellow": "lofi", "lofi hip hop": "lofi", "lo-fi hip hop": "lofi",
    "house": "house", "deep house": "house", "tech house": "house", "disco": "house", "four on the floor": "house",
    "edm": EDM_DEFAULT, "dance": EDM_DEFAULT, "club": EDM_DEFAULT, "electronic dance": EDM_DEFAULT,
    "techno": "techno", "minimal techno": "techno", "industrial techno": "techno", "rave": "techno",
    "dnb": "dnb", "d&b": "dnb", "d'n'b": "dnb", "dnb beat": "dnb", "drum and bass": "dnb", "drum & bass": "dnb",
    "drum n bass": "dnb", "drum'n'bass": "dnb", "drumnbass": "dnb", "drum-and-bass": "dnb", "jungle": "dnb",
    "liquid dnb": "dnb", "neurofunk": "dnb",
    "dubstep": "dubstep", "brostep": "dubstep", "riddim": "dubstep", "wobble": "dubstep", "wobble bass": "dubstep",
    "breakbeat": "breakbeat", "break beat": "breakbeat", "breaks": "breakbeat", "funk breakbeat": "breakbeat",
    "funk": "breakbeat", "funky": "breakbeat", "big beat": "breakbeat",
    "ambient": "ambient", "chillwave": "ambient", "drone": "ambient", "atmospheric": "ambient",
    "cinematic": "ambient", "meditation": "ambient", "soundscape": "ambient", "calm": "ambient",
    "rock": "rock", "guitar": "rock", "punk": "rock", "metal": "rock", "grunge": "rock", "indie": "rock",
    "band": "rock",
}


def canonical_genre(text: str) -> str | None:
    """A genre's name from any spelling of it ('Boom Bap', 'lo-fi', 'DnB', 'edm'), else None."""
    if not isinstance(text, str):
        return None
    t = re.sub(r"[\s_]+", " ", text.strip().lower())
    if t in GENRES:
        return t
    return ALIASES.get(t) or ALIASES.get(t.replace(" ", "")) or ALIASES.get(t.replace("-", " "))


def genre_list() -> str:
    return ", ".join(GENRES)


# Song sections: what a structure may name, and what each one is called in the take's JSON
SECTIONS = {"intro": "intro", "verse": "verse", "hook": "hook", "chorus": "hook", "drop": "drop",
            "build": "build", "buildup": "build", "build-up": "build", "riser": "build", "break": "break",
            "breakdown": "break", "bridge": "break", "outro": "outro", "loop": "loop", "main": "loop"}
MAX_SECTION_BARS = 128
MAX_STRUCTURE_BARS = 1024


def parse_structure(text: str) -> tuple[tuple[str, int], ...]:
    """'intro:4,drop:8,break:4,drop:8' → (('intro', 4), ('drop', 8), …), with a message that says what to fix."""
    if not isinstance(text, str) or not text.strip():
        raise JobError("structure must be text like 'intro:4,verse:8,hook:8,outro:4' (section:bars, …)")
    out = []
    for part in re.split(r"[,;\s]+", re.sub(r"\s*:\s*", ":", text.strip())):
        if not part:
            continue
        name, sep, bars = part.partition(":")
        sec = SECTIONS.get(name.strip().lower())
        if sec is None:
            raise JobError(f"structure: {name!r} is not a section; sections: {', '.join(sorted(set(SECTIONS)))}")
        if not sep or not bars.strip().isdigit() or not (1 <= int(bars) <= MAX_SECTION_BARS):
            raise JobError(f"structure: {part!r} needs a bar count from 1 to {MAX_SECTION_BARS}, like '{name}:8'")
        out.append((sec, int(bars)))
    if len(out) > 64:
        raise JobError(f"structure has {len(out)} sections; the limit is 64")
    total = sum(b for _, b in out)
    if total > MAX_STRUCTURE_BARS:
        raise JobError(f"structure is {total} bars long; the limit is {MAX_STRUCTURE_BARS}")
    return tuple(out)


def format_structure(sections) -> str:
    return ",".join(f"{n}:{b}" for n, b in sections)

"""Reading a prompt the way a producer writes it: '140 BPM', 'F#m', 'in Eb major', 'boom bap', 'dnb'.

``read_prompt`` finds the tempo, key, genre and a few arrangement words in free
text; ``interpret`` combines them with a job's explicit fields (which always
win) and the genre's defaults into what gets made, and remembers where each
value came from (``field``, ``prompt`` or ``default``). The result goes into the
take's JSON as ``interpreted`` and into ``jackgen generate``'s reply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from jackgen.generators.vocab import (
    ALIASES, GENRES, canonical_genre, format_structure, parse_key, parse_structure,
)

DEFAULT_GENRE = "lofi"  # a prompt with no genre word in it

# Genre words that only lean towards a genre: a real genre name in the same prompt wins over them.
WEAK = {"chill", "jazzy", "study", "mellow", "dance", "club", "guitar", "band", "calm", "funky", "rap", "808",
        "wobble", "atmospheric", "cinematic", "drone", "rage", "indie"}

# Words that change the arrangement, each with the spellings read as it
FLAGS: dict[str, tuple[str, ...]] = {
    "dark": ("dark", "sinister", "evil", "menacing", "gloomy", "eerie", "moody", "haunting", "ominous"),
    "sad": ("sad", "melancholy", "melancholic", "emotional", "heartbreak"),
    "bright": ("bright", "happy", "uplifting", "euphoric", "sunny", "upbeat", "joyful"),
    "punchy": ("punchy", "hard-hitting", "hard hitting", "aggressive", "knocking", "slapping", "banging"),
    "hard kick": ("hard kick", "hard kicks", "heavy kick", "heavy kicks", "big kick", "big kicks", "punchy kick",
                  "hard-hitting kick", "kick heavy"),
    "hat rolls": ("hi-hat roll", "hi-hat rolls", "hihat roll", "hihat rolls", "hi hat roll", "hi hat rolls",
                  "hat roll", "hat rolls", "rolling hats", "rolling hi-hats", "hi-hat rolling", "hat rolling"),
    "strings": ("strings", "string section", "violin", "violins", "orchestral", "cello"),
    "pads": ("pads", "pad", "synth pad", "synth pads"),
    "piano": ("piano", "keys"),
    "rhodes": ("rhodes", "electric piano"),
    "bells": ("bells", "bell", "glockenspiel", "music box", "celesta", "plucks"),
    "guitar": ("guitar", "guitars"),
    "no drums": ("no drums", "without drums", "drumless", "no percussion", "no beat"),
    "no bass": ("no bass", "without bass", "no 808"),
    "no melody": ("no melody", "without melody", "no lead"),
    "808": ("808", "808s", "sliding 808", "sliding 808s", "808 bass", "808 slide", "808 slides", "eight oh eight"),
}

_NUM = r"(\d{2,3}(?:\.\d+)?)"
_TEMPO_RES = (
    re.compile(_NUM + r"\s*-?\s*(?:bpm|b\.p\.m\.?|beats per minute)(?![a-z])", re.I),
    re.compile(r"(?:tempo|bpm)\s*(?:of|:|=|at)?\s*" + _NUM + r"(?![\d.]|\s*(?:%|hz|khz|db|sec|seconds|bars?)\b)", re.I),
    re.compile(r"\bat\s+" + _NUM + r"(?![\d.]|\s*(?:%|hz|khz|db|s\b|sec|seconds|bars?|minutes?|am|pm))", re.I),
)
_ACC = r"(#|♯|b|♭|\s?sharp|\s?flat)?"
_KEY_MODE = re.compile(r"(?<![\w#♯])([A-Ga-g])" + _ACC + r"\s?-?\s?(minor|major|min|maj)(?![a-z])")
_KEY_M = re.compile(r"(?<![\w#♯])([A-G])(#|♯|b|♭)?m(?![A-Za-z])")
_KEY_IN = re.compile(r"\b(?:in|key of|key)\s+([A-G])" + _ACC + r"(?![\w#♯])")
_SORTED_ALIASES = sorted(ALIASES, key=len, reverse=True)
_SORTED_FLAG_WORDS = sorted(((w, f) for f, ws in FLAGS.items() for w in ws), key=lambda wf: len(wf[0]), reverse=True)


def _phrase_re(phrase: str) -> re.Pattern:
    return re.compile(r"(?<![\w'&])" + re.escape(phrase).replace(r"\ ", r"[\s_-]+") + r"(?![\w'&])", re.I)


_ALIAS_RES = [(a, _phrase_re(a)) for a in _SORTED_ALIASES]
_FLAG_RES = [(w, f, _phrase_re(w)) for w, f in _SORTED_FLAG_WORDS]


@dataclass(frozen=True)
class Reading:
    """What a prompt says by itself."""

    bpm: float | None = None
    key: str | None = None  # a Key's name, 'F# minor'
    genre: str | None = None
    genre_words: tuple[str, ...] = ()  # the words it was read from
    flags: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"bpm": self.bpm, "key": self.key, "genre": self.genre, "genre_words": list(self.genre_words),
                "words": list(self.flags)}


def read_tempo(text: str) -> float | None:
    for rx in _TEMPO_RES:
        for m in rx.finditer(text):
            v = float(m.group(1))
            if 30.0 <= v <= 300.0:
                return v
    return None


def read_key(text: str) -> str | None:
    found = []
    for rx, mode in ((_KEY_MODE, None), (_KEY_M, "m")):
        for m in rx.finditer(text):
            found.append((m.start(), m.group(1), m.group(2), mode or m.group(3)))
    if not found:
        found = [(m.start(), m.group(1), m.group(2), "major") for m in _KEY_IN.finditer(text)]
    if not found:
        return None
    _, letter, acc, mode = min(found)
    return parse_key(f"{letter}{(acc or '').strip()} {mode}").name


def read_genre(text: str) -> tuple[str | None, tuple[str, ...]]:
    """The genre the prompt names most (a proper name counts 3, a leaning word 1; ties: the first)."""
    spans: list[tuple[int, int]] = []
    score: dict[str, float] = {}
    first: dict[str, int] = {}
    words: list[str] = []
    for alias, rx in _ALIAS_RES:
        for m in rx.finditer(text):
            if any(a < m.end() and m.start() < b for a, b in spans):
                continue  # inside a longer phrase already read ('lofi hip hop' is not also 'hip hop')
            spans.append((m.start(), m.end()))
            g = ALIASES[alias]
            score[g] = score.get(g, 0.0) + (1.0 if alias in WEAK else 3.0)
            first[g] = min(first.get(g, m.start()), m.start())
            words.append(m.group(0))
    if not score:
        return None, ()
    best = max(score, key=lambda g: (score[g], -first[g]))
    return best, tuple(words)


def read_flags(text: str) -> tuple[str, ...]:
    spans: list[tuple[int, int]] = []
    flags: list[str] = []
    for _, flag, rx in _FLAG_RES:
        for m in rx.finditer(text):
            if any(a < m.end() and m.start() < b for a, b in spans):
                continue
            spans.append((m.start(), m.end()))
            if flag not in flags:
                flags.append(flag)
    order = list(FLAGS)
    return tuple(sorted(flags, key=order.index))


def read_prompt(text: str) -> Reading:
    text = text or ""
    genre, words = read_genre(text)
    return Reading(bpm=read_tempo(text), key=read_key(text), genre=genre, genre_words=words, flags=read_flags(text))


@dataclass(frozen=True)
class Interpretation:
    genre: str
    bpm: float
    key: str
    flags: tuple[str, ...]
    structure: tuple[tuple[str, int], ...] | None
    reading: Reading
    source: dict = field(default_factory=dict)  # genre/bpm/key → "field" | "prompt" | "default"

    def to_dict(self) -> dict:
        chosen = {"genre": self.genre, "bpm": self.bpm, "key": self.key, "words": list(self.flags)}
        if self.structure:
            chosen["structure"] = format_structure(self.structure)
        return {"read": self.reading.to_dict(), "chosen": chosen, "source": dict(self.source)}

    def summary(self) -> str:
        """'trap at 140 bpm in F# minor (genre from style, tempo from the prompt, key default)'."""
        names = {"genre": "genre", "bpm": "tempo", "key": "key"}
        how = ", ".join(f"{names[k]} {'from the ' + v if v in ('prompt', 'field') else v}"
                        for k, v in self.source.items())
        extra = f", {' '.join(self.flags)}" if self.flags else ""
        return f"{self.genre} at {self.bpm:g} bpm in {self.key}{extra} ({how})"


def interpret(prompt: str, style: str | None = None, bpm: float | None = None, key: str | None = None,
              structure: str | None = None) -> Interpretation:
    """Explicit fields over the prompt over the genre's defaults."""
    r = read_prompt(prompt)
    src = {}
    if style:
        genre, src["genre"] = canonical_genre(style) or style, "field"
    elif r.genre:
        genre, src["genre"] = r.genre, "prompt"
    else:
        genre, src["genre"] = DEFAULT_GENRE, "default"
    g = GENRES[genre]
    if bpm:
        tempo, src["bpm"] = float(bpm), "field"
    elif r.bpm:
        tempo, src["bpm"] = r.bpm, "prompt"
    else:
        tempo, src["bpm"] = g.bpm, "default"
    if key:
        k, src["key"] = parse_key(key).name, "field"
    elif r.key:
        k, src["key"] = r.key, "prompt"
    else:
        dk = parse_key(g.key)
        if not dk.minor and ({"dark", "sad"} & set(r.flags)) or dk.minor and "bright" in r.flags:
            dk = dk.relative  # a dark prompt in a major-key genre: its relative minor, and the other way round
        k, src["key"] = dk.name, "default"
    sections = parse_structure(structure) if structure else None
    return Interpretation(genre, tempo, k, r.flags, sections, r, src)


def interpret_spec(spec) -> Interpretation:
    """``interpret`` for a ``JobSpec`` (anything with prompt, style, bpm, key and structure)."""
    return interpret(spec.prompt, spec.style, spec.bpm, spec.key, getattr(spec, "structure", None))


def structure_seconds(sections, bpm: float, beats_per_bar: int = 4) -> float:
    return sum(b for _, b in sections) * beats_per_bar * 60.0 / bpm


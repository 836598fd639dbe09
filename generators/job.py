"""Generation jobs: the request every backend takes, validated once.

A job is plain data (it travels as JSON to a worker today and through Redis
later): ``JobSpec.from_dict`` checks every field and raises ``JobError`` with a
message that names the field and the allowed range, so OSC, HTTP and the CLI
all give the same answer to the same mistake.
"""

from __future__ import annotations

import re

from dataclasses import asdict, dataclass, field
from typing import Any

from jackgen.common.takes import new_take_id
from jackgen.generators.prompt import DEFAULT_GENRE, interpret, read_genre, structure_seconds
from jackgen.generators.vocab import (  # noqa: F401  (Key, parse_key: the job's vocabulary, imported from here)
    GENRES, JobError, Key, canonical_genre, format_structure, genre_list, parse_key, parse_structure,
)

BACKENDS = ("procedural", "fluidsynth", "musicgen")
STYLES = tuple(GENRES)  # the procedural genres; canonical_genre reads their other spellings
PRIORITIES = {"high": 0, "normal": 1, "low": 2}
OUTPUT_FORMATS = ("wav", "flac")
MAX_DURATION_S = 600.0
MAX_VARIATIONS = 8
MAX_PROMPT_CHARS = 2000

def new_job_id() -> str:
    """A job's id, which is also its first take's (``common.takes``)."""
    return new_take_id()


def _num(d: dict, name: str, lo: float, hi: float, default: float | None, integer: bool = False) -> Any:
    v = d.get(name, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise JobError(f"{name} must be a number from {lo:g} to {hi:g}, got {v!r}")
    try:
        x = float(v)
    except ValueError:
        raise JobError(f"{name} must be a number from {lo:g} to {hi:g}, got {v!r}") from None
    if not (lo <= x <= hi):  # also false for NaN
        raise JobError(f"{name} must be from {lo:g} to {hi:g}, got {v!r}")
    if integer:
        if x != int(x):
            raise JobError(f"{name} must be a whole number, got {v!r}")
        return int(x)
    return x


def _choice(d: dict, name: str, options, default: str | None) -> str | None:
    v = d.get(name, default)
    if v is None:
        return None
    if not isinstance(v, str) or v.lower() not in options:
        raise JobError(f"{name} must be one of {', '.join(options)}, got {v!r}")
    return v.lower()


@dataclass(frozen=True)
class JobSpec:
    prompt: str
    duration_s: float = 10.0
    backend: str = "procedural"
    bpm: float | None = None  # None: the style's own tempo
    key: str | None = None  # None: the style's own key
    style: str | None = None  # a genre (canonical name); None: read from the prompt
    seed: int | None = None  # None: drawn at submission and recorded
    variations: int = 1
    track: int | None = None  # 0-based; None: render the take only
    priority: str = "normal"
    output_format: str = "wav"
    midi: str | None = None  # fluidsynth backend: the MIDI file to render
    soundfont: str | None = None
    # musicgen sampling
    top_k: int = 250
    top_p: float = 0.0
    temperature: float = 1.0
    cfg_coef: float = 3.0
    melody: str | None = None  # musicgen-melody: audio file whose chroma conditions the output
    structure: str | None = None  # 'intro:4,drop:8,break:4,drop:8'; None: the genre's song form
    # procedural (and fluidsynth without a MIDI file): stems played by a plugin instrument instead of
    # FluidSynth: {"lead": {"plugin": "http://synthv1.sourceforge.net/lv2", "params": {…}}, …}
    instruments: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    KEYS = ("prompt", "duration", "duration_s", "backend", "bpm", "key", "style", "seed", "variations", "track",
            "priority", "output_format", "midi", "soundfont", "top_k", "top_p", "temperature", "cfg_coef",
            "melody", "structure", "instruments")

    @classmethod
    def from_dict(cls, d: dict, default_backend: str = "procedural", max_duration_s: float = MAX_DURATION_S) -> JobSpec:
        if not isinstance(d, dict):
            raise JobError("a job is a JSON object with at least a prompt")
        unknown = sorted(set(d) - set(cls.KEYS))
        if unknown:
            raise JobError(f"unknown job field(s) {', '.join(unknown)}; known: {', '.join(cls.KEYS)}")
        prompt = d.get("prompt", "")
        if not isinstance(prompt, str):
            raise JobError(f"prompt must be text, got {type(prompt).__name__}")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise JobError(f"prompt is {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}")
        dur = d.get("duration_s", d.get("duration", 10.0))
        duration = _num({"duration": dur}, "duration", 0.5, max_duration_s, 10.0)
        backend = _choice(d, "backend", BACKENDS, default_backend)
        bpm = _num(d, "bpm", 30.0, 300.0, None)
        key = d.get("key")
        if key is not None:
            if not isinstance(key, str):
                raise JobError(f"key must be text like 'A minor', got {key!r}")
            key = parse_key(key).name
        style = d.get("style")
        if style is not None:
            genre = canonical_genre(style)
            if genre is None:
                raise JobError(f"style must be one of {genre_list()} (or a spelling of one: boom bap, lo-fi, "
                               f"drum and bass, dnb, edm…), got {style!r}")
            style = genre
        structure = d.get("structure")
        if structure is not None:
            structure = format_structure(parse_structure(structure))
            if "duration" not in d and "duration_s" not in d:  # as long as the structure, at the tempo made
                it = interpret(prompt, style, bpm, key, structure)
                duration = structure_seconds(it.structure, it.bpm)
                if duration > max_duration_s:
                    raise JobError(f"structure {structure} is {duration:.0f} s at {it.bpm:g} bpm; the limit is "
                                   f"{max_duration_s:g} s (generators.max_duration_s)")
        seed = _num(d, "seed", 0, 2**31 - 1, None, integer=True)
        variations = _num(d, "variations", 1, MAX_VARIATIONS, 1, integer=True)
        track = _num(d, "track", 1, 16, None, integer=True)
        priority = _choice(d, "priority", tuple(PRIORITIES), "normal")
        fmt = _choice(d, "output_format", OUTPUT_FORMATS, "wav")
        for name in ("midi", "soundfont", "melody"):
            if d.get(name) is not None and (not isinstance(d[name], str) or not d[name]):
                raise JobError(f"{name} must be a file path")
        instruments = _instruments(d.get("instruments"), backend, d.get("midi"))
        if backend == "musicgen" and not prompt.strip() and d.get("melody") is None:
            raise JobError("musicgen needs a prompt (or a melody)")
        return cls(
            prompt=prompt.strip(), duration_s=duration, backend=backend, bpm=bpm, key=key, style=style,
            seed=seed, variations=variations, track=None if track is None else track - 1, priority=priority,
            output_format=fmt, midi=d.get("midi"), soundfont=d.get("soundfont"),
            top_k=_num(d, "top_k", 0, 100000, 250, integer=True), top_p=_num(d, "top_p", 0.0, 1.0, 0.0),
            temperature=_num(d, "temperature", 0.0, 10.0, 1.0), cfg_coef=_num(d, "cfg_coef", 0.0, 50.0, 3.0),
            melody=d.get("melody"), structure=structure, instruments=instruments,
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("extra")
        return d

    def with_(self, **kw) -> JobSpec:
        d = asdict(self)
        d.update(kw)
        return JobSpec(**d)


MAX_INSTRUMENTS = 8


def _instruments(v, backend: str, midi) -> dict:
    """``instruments``: stem name -> a plugin (its name or URI) or {"plugin", "params"}, normalized to the latter."""
    if v is None or v == {}:
        return {}
    if backend == "musicgen" or midi is not None:
        raise JobError("instruments play the stems of a procedural composition (procedural, or fluidsynth without "
                       "a MIDI file)")
    if not isinstance(v, dict) or len(v) > MAX_INSTRUMENTS:
        raise JobError(f"instruments must be an object of stem name -> plugin (at most {MAX_INSTRUMENTS})")
    out = {}
    for stem, spec in v.items():
        if not isinstance(stem, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", stem):
            raise JobError(f"instruments: {stem!r} is not a stem name (drums, bass, chords, lead, …)")
        if isinstance(spec, str):
            spec = {"plugin": spec}
        if (not isinstance(spec, dict) or not isinstance(spec.get("plugin"), str) or not spec["plugin"]
                or len(spec["plugin"]) > 1024 or set(spec) - {"plugin", "params"}
                or not isinstance(spec.get("params", {}), dict)):
            raise JobError(f"instruments.{stem} must be a plugin name or URI, or {{\"plugin\": …, \"params\": {{…}}}}")
        out[stem] = {"plugin": spec["plugin"], "params": dict(spec.get("params") or {})}
    return out


def guess_style(prompt: str) -> str:
    """The genre a prompt names ('chill lofi beat' → lofi, 'dnb roller' → dnb); lofi when it names none."""
    return read_genre(prompt or "")[0] or DEFAULT_GENRE

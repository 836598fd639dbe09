"""The session file, ``sessions/<name>/session.json``: one versioned model, read and written here only.

Control keeps the live session and writes it on every change; ``jackgen bounce`` and ``jackgen warp``
read it. Every reader goes through :func:`read_session`, which migrates older versions and checks
each value (what does not check out is reset to its default and logged), so no two readers can
disagree about what a session says — e.g. which plugins are marked failed (:func:`live_chain`).

Version 2 adds ``clip`` to each track: the file it last played (``jackgen play N FILE``, or the take
a job streamed into it), so a bounce renders played tracks as well as armed ones.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from jackgen.bridge.instance import N_TRACKS
from jackgen.common.errors import JackgenError
from jackgen.common.files import atomic_write_json
from jackgen.dsp.master import EQ_BANDS, BandError, check_band
from jackgen.dsp.mix import MAX_GAIN_DB, MIN_GAIN_DB

log = logging.getLogger("jackgen.session")

SESSION_VERSION = 2
SESSION_FILE = "session.json"


class SessionError(JackgenError):
    status = 404


@dataclass
class TrackSettings:
    """What a session keeps of one track."""

    gain_db: float = 0.0
    pan: float = 0.0
    mute: bool = False
    solo: bool = False
    armed: str | None = None  # the clip armed for triggers
    clip: str | None = None  # the file the track last played (played or armed, a bounce renders it)
    chain: list[dict] = field(default_factory=list)  # plugin states, in order (jackgen.plugins.host)

    def to_json(self) -> dict:
        return {"gain_db": self.gain_db, "pan": self.pan, "mute": self.mute, "solo": self.solo,
                "armed": self.armed, "clip": self.clip, "chain": self.chain}

    @property
    def bounce_clip(self) -> str | None:
        """What a bounce plays on this track: the armed clip, else the file it last played."""
        return self.armed or self.clip


@dataclass
class SessionData:
    name: str
    tempo_bpm: float = 120.0
    beats_per_bar: int = 4
    tracks: list[TrackSettings] = field(default_factory=lambda: [TrackSettings() for _ in range(N_TRACKS)])
    master: dict = field(default_factory=lambda: default_master())

    def to_json(self) -> dict:
        return {"version": SESSION_VERSION, "name": self.name, "tempo_bpm": self.tempo_bpm,
                "beats_per_bar": self.beats_per_bar, "tracks": [t.to_json() for t in self.tracks],
                "master": self.master}


def live_chain(chain: list[dict]) -> list[dict]:
    """A chain as its host runs it: without the plugins marked failed (they crashed a host)."""
    return [c for c in chain if not c.get("failed")]


def live_index(chain: list[dict], i: int) -> int | None:
    """Where plugin ``i`` sits in the running chain (None: it is failed, not running)."""
    if chain[i].get("failed"):
        return None
    return sum(1 for c in chain[:i] if not c.get("failed"))


def default_master() -> dict:
    return {"gain_db": 0.0, "eq": [check_band({"type": "off"}) for _ in range(EQ_BANDS)], "chain": []}


def _chain(data: object) -> list[dict]:
    return [c for c in (data if isinstance(data, list) else []) if isinstance(c, dict) and c.get("plugin")]


def _number(v: object, lo: float, hi: float, default: float) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
        return default
    return float(v)


def _path(v: object) -> str | None:
    return v if isinstance(v, str) and v else None


def load_master(data: object) -> dict:
    """The session's mastering settings; what does not check out is reset (and logged)."""
    m = default_master()
    if not isinstance(data, dict):
        return m
    m["chain"] = _chain(data.get("chain"))
    m["gain_db"] = _number(data.get("gain_db", 0.0), MIN_GAIN_DB, MAX_GAIN_DB, 0.0)
    try:
        for b, band in enumerate((data.get("eq") or [])[:EQ_BANDS]):
            m["eq"][b] = check_band(band)
    except BandError as e:
        log.error("the session's master EQ is invalid (%s); using a flat EQ", e)
        m["eq"] = default_master()["eq"]
    return m


def migrate(data: dict) -> dict:
    """An older session file's data in the current version's shape."""
    version = data.get("version", 1)
    if not isinstance(version, int) or version > SESSION_VERSION:
        raise ValueError(f"session version {version!r} is newer than this jackgen reads ({SESSION_VERSION})")
    if version < 2:  # version 1 had no per-track clip
        data = {**data, "tracks": [{**t, "clip": None} if isinstance(t, dict) else t for t in data.get("tracks") or []]}
    return {**data, "version": SESSION_VERSION}


def from_json(data: object, name: str) -> SessionData:
    if not isinstance(data, dict):
        raise ValueError("a session file holds a JSON object")
    data = migrate(data)
    s = SessionData(name)
    for t, d in enumerate((data.get("tracks") or [])[:N_TRACKS]):
        if not isinstance(d, dict):
            continue
        s.tracks[t] = TrackSettings(
            gain_db=_number(d.get("gain_db", 0.0), MIN_GAIN_DB, MAX_GAIN_DB, 0.0),
            pan=_number(d.get("pan", 0.0), -1.0, 1.0, 0.0), mute=bool(d.get("mute", False)),
            solo=bool(d.get("solo", False)), armed=_path(d.get("armed")), clip=_path(d.get("clip")),
            chain=_chain(d.get("chain")))
    s.master = load_master(data.get("master"))
    s.tempo_bpm = _number(data.get("tempo_bpm", s.tempo_bpm), 20.0, 400.0, s.tempo_bpm)
    bpb = data.get("beats_per_bar", s.beats_per_bar)
    s.beats_per_bar = bpb if isinstance(bpb, int) and not isinstance(bpb, bool) and 1 <= bpb <= 32 else 4
    return s


def session_file(session_dir: Path) -> Path:
    return session_dir / SESSION_FILE


def read_session(session_dir: Path) -> SessionData:
    """The session in ``session_dir``; SessionError if there is none or it cannot be read."""
    path = session_file(session_dir)
    if not path.is_file():
        raise SessionError(f"session {session_dir.name!r} does not exist (no {path})")
    try:
        return from_json(json.loads(path.read_text()), session_dir.name)
    except (ValueError, TypeError, AttributeError) as e:
        raise SessionError(f"session file {path} is unreadable: {e}", status=400) from None


def load_or_new(session_dir: Path, defaults: SessionData) -> SessionData:
    """For the control process: the saved session, or ``defaults`` if there is none yet; an
    unreadable file is kept aside (``session.broken-<time>.json``) and a fresh session starts."""
    path = session_file(session_dir)
    if not path.exists():
        return defaults
    try:
        data = read_session(session_dir)
    except SessionError as e:
        backup = path.with_suffix(f".broken-{int(time.time())}.json")
        shutil.copy(path, backup)
        log.error("%s; kept a copy at %s and started fresh", e, backup)
        return defaults
    log.info("session '%s' loaded from %s", session_dir.name, path)
    return data


def write_session(session_dir: Path, data: SessionData) -> None:
    atomic_write_json(session_file(session_dir), data.to_json())

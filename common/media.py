"""Which files a request may name: the one media path policy.

Every place a file name arrives — a clip to load or play, a MIDI file, a SoundFont or a melody in a
job, whether it came over OSC, HTTP, the CLI or (later) a queue message a worker takes — resolves it
here. A relative name means "inside the session folder"; a take id names the take's audio in
``audio_gen/``; ``..`` and symlinks are resolved *before* the check, so a link inside the session
that points elsewhere is refused like the path it points to. What lies outside the allowed folders
(the sessions folder, ``control.media_dirs``, and for SoundFonts the system's SoundFont folders) is
refused with 403: files are read by jackgen's processes, which may run as another user.

Pure path logic (no audio decoding), so the control process and the generator workers share it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from jackgen.common.errors import JackgenError
from jackgen.common.takes import TAKE_RE

SOUNDFONT_DIRS = ("/usr/share/sounds", "/usr/share/soundfonts")
MAX_PATH_CHARS = 4096


class MediaError(JackgenError):
    """A file name a request may not use (403 when it lies outside the allowed folders)."""


@dataclass(frozen=True)
class MediaPolicy:
    session_dir: Path  # relative names and take ids are resolved here
    roots: tuple[Path, ...]  # files must lie inside one of these (resolved)
    extra_roots: dict[str, tuple[Path, ...]] = field(default_factory=dict)  # per kind, e.g. "soundfont"

    @classmethod
    def for_session(cls, session_dir: Path, sessions_dir: str | os.PathLike[str],
                    media_dirs: Iterable[str] = ()) -> MediaPolicy:
        roots = (Path(sessions_dir).resolve(), *(Path(d).expanduser().resolve() for d in media_dirs))
        return cls(Path(session_dir), roots, {"soundfont": tuple(Path(d) for d in SOUNDFONT_DIRS)})

    def to_dict(self) -> dict:
        """What a worker process needs to apply the same policy (JSON-safe)."""
        return {"session_dir": str(self.session_dir), "roots": [str(r) for r in self.roots],
                "extra_roots": {k: [str(p) for p in v] for k, v in self.extra_roots.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> MediaPolicy:
        return cls(Path(d["session_dir"]), tuple(Path(r) for r in d["roots"]),
                   {k: tuple(Path(p) for p in v) for k, v in (d.get("extra_roots") or {}).items()})

    def in_session(self, name: str) -> str:
        """A relative path from a remote client means: inside the session folder."""
        return name if Path(name).is_absolute() else str(self.session_dir / name)

    def take_path(self, name: str) -> Path | None:
        """A take id ('20261130-191500-a1b2c3') names audio_gen/<take>.wav (or .flac) of the session."""
        take = Path(name).name
        if not TAKE_RE.match(take) or not (name == take or name.endswith("/" + take)):
            return None
        for ext in ("wav", "flac"):
            p = self.session_dir / "audio_gen" / f"{take}.{ext}"
            if p.is_file():
                return p
        return None

    def allowed_roots(self, kind: str = "audio") -> tuple[Path, ...]:
        return self.roots + self.extra_roots.get(kind, ())

    def resolve(self, name: object, what: str = "audio file", kind: str = "audio", field_name: str = "file") -> Path:
        """The file ``name`` refers to, resolved, after every check; or a MediaError that says why
        and what to do."""
        if not isinstance(name, str) or not name:
            raise MediaError(f"{field_name} must be a path to {'an' if what[0] in 'aeiou' else 'a'} {what}")
        if "\0" in name or len(name) > MAX_PATH_CHARS:
            raise MediaError(f"{field_name} is not a valid path")
        take = self.take_path(name) if kind == "audio" else None
        p = (take if take is not None else Path(self.in_session(name))).resolve()  # '..' and symlinks first
        roots = self.allowed_roots(kind)
        if not any(p.is_relative_to(r) for r in roots):
            raise MediaError(
                f"{what} {name} is outside the folders jackgen reads from ({', '.join(map(str, roots))}): "
                f"copy it into {self.session_dir} or add its folder to control.media_dirs", status=403)
        if not p.is_file():
            raise MediaError(f"{what} {name} does not exist")
        return p

"""The generation library: every take in a database, searchable by its parameters and its prompt.

SQLite in the data folder by default (WAL: readers never wait for the writer), PostgreSQL by URL
(``[database] url = "postgresql+psycopg://user:pass@host/db"``); one SQLAlchemy code path for both.
The schema is Alembic's (``upgrade`` runs on every open).

Who writes: control, when a job's "done" event names its takes (their files are final by then:
the worker renamed them into place and fsynced the folder before it acked). A take is keyed by its
id, so an event handled twice (a restarted control reads on from the last event its predecessor
handled) adds nothing twice. ``reconcile`` runs at start and finds any take JSON the library does
not know (a control killed between the two, events trimmed while it was down, takes made before
the library existed) and any row whose file has gone: nothing made is lost, no row points nowhere.

Threading: a ``Library`` may be used from several threads (SQLAlchemy's pool; the prompt index
has its own lock). Control calls it from a worker thread, never from its event loop.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, selectinload

from jackgen.common.files import read_json
from jackgen.common.takes import TAKE_RE
from jackgen.daemon.library.models import Generation, MidiStem, Project, PromptEmbedding

log = logging.getLogger("jackgen.library")

TRASH = ".trash"  # <session>/.trash/<take>/: a deleted take's files, until restored or emptied
MAX_PAGE = 500


class LibraryError(ValueError):
    """A library request that cannot be done (unknown take, bad filter); ``status`` for HTTP."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def default_url(data_path: Path, instance: str) -> str:
    return f"sqlite:///{data_path / 'library' / f'{instance}.sqlite'}"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        eng = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(eng, "connect")
        def _pragmas(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")  # readers go on while the writer commits
            cur.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a power cut loses at most the last commit
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return eng
    # PostgreSQL: a server that went away is noticed per checkout, and a connect never hangs for long
    return create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4,
                         connect_args={"connect_timeout": 3})


def upgrade(eng: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Run the migrations up to ``revision``; (revision before, revision after)."""
    from alembic import command
    from alembic.config import Config as AlembicConfig
    from alembic.runtime.migration import MigrationContext

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with eng.begin() as conn:
        before = MigrationContext.configure(conn).get_current_revision()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        after = MigrationContext.configure(conn).get_current_revision()
    return before, after


def _take_time(take: str, fallback: float) -> float:
    try:
        return time.mktime(time.strptime(take[:15], "%Y%m%d-%H%M%S"))
    except ValueError:
        return fallback


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) else None


def _loudness(path: Path) -> float | None:
    """Integrated loudness (LUFS, ITU-R BS.1770) of an audio file, or None for silence/unreadable."""
    try:
        import pyloudnorm
        import soundfile as sf

        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        if len(data) < rate * 0.4:  # shorter than one gating block
            return None
        v = pyloudnorm.Meter(rate).integrated_loudness(data)
        return round(float(v), 2) if np.isfinite(v) else None
    except Exception as e:  # a file that cannot be read is noted, not fatal: the take is still listed
        log.warning("loudness of %s: %s", path, e)
        return None


@dataclass
class Filters:
    session: str | None = None
    backend: str | None = None
    bpm_min: float | None = None
    bpm_max: float | None = None
    key: str | None = None
    style: str | None = None
    text: str | None = None
    since: float | None = None
    until: float | None = None
    deleted: bool = False


class Library:
    def __init__(self, url: str, index_dir: Path, sessions_root: Path, embedder: Any = "auto",
                 migrate: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        self.sessions_root = Path(sessions_root).resolve()
        self.revision: tuple[str | None, str | None] = (None, None)
        if migrate:
            self.revision = upgrade(self.engine)
        if embedder == "auto":
            from jackgen.daemon.library.embed import shared_embedder

            embedder = shared_embedder()
        self.embedder = embedder
        from jackgen.daemon.library.index import PromptIndex

        self.index = PromptIndex(Path(index_dir), self.engine, embedder.name if embedder else None)
        self._write_lock = threading.Lock()  # one writer at a time (SQLite has one anyway)

    def close(self) -> None:
        self.index.save()
        self.engine.dispose()

    # ------------------------------------------------------------ health
    def ping(self) -> float:
        """Seconds one query takes; raises when the database cannot answer."""
        t0 = time.perf_counter()
        with self.engine.connect() as c:
            c.execute(text("SELECT 1")).scalar()
        return time.perf_counter() - t0

    @property
    def search_mode(self) -> str:
        return "embedding" if self.embedder is not None else "text"

    # ------------------------------------------------------------ writing
    def _project(self, s: Session, session_dir: Path) -> Project:
        name = session_dir.name
        p = s.scalar(select(Project).where(Project.name == name))
        if p is None:
            p = Project(name=name, path=str(session_dir), created_at=time.time())
            s.add(p)
            s.flush()
        return p

    def add_take(self, json_path: str | Path, job_id: str | None = None, attempt: int | None = None) -> int | None:
        """Record the take whose JSON is ``json_path`` (its audio beside it); its row id. None when the
        JSON is not a take inside the sessions folder. Adding a take already known changes nothing."""
        jp = Path(json_path).resolve()
        if not jp.is_relative_to(self.sessions_root) or jp.parent.name != "audio_gen":
            log.warning("library: %s is not a take in %s; not recorded", jp, self.sessions_root)
            return None
        meta = read_json(jp)
        take = meta.get("take") if isinstance(meta, dict) else None
        if not isinstance(take, str) or not TAKE_RE.match(take) or take != jp.stem:
            log.warning("library: %s is not a take's JSON; not recorded", jp)
            return None
        audio = jp.parent / str(meta.get("file") or "")
        if not meta.get("file") or not audio.is_file() or audio.parent != jp.parent:
            log.warning("library: take %s has no audio file beside its JSON; not recorded", take)
            return None
        with Session(self.engine) as s:
            known = s.scalar(select(Generation.id).where(Generation.take == take))
        if known is not None:
            return known
        params = meta.get("params") if isinstance(meta.get("params"), dict) else {}
        prompt = str(meta.get("prompt") or params.get("prompt") or "")[:4000]
        # the slow parts (the file's loudness, the prompt's embedding) before the write transaction
        loudness = _num(meta.get("loudness_lufs")) or _loudness(audio)
        vec = self._embed(prompt)
        with self._write_lock, Session(self.engine) as s:
            known = s.scalar(select(Generation.id).where(Generation.take == take))
            if known is not None:  # added meanwhile by another thread
                return known
            timings = meta.get("timings") if isinstance(meta.get("timings"), dict) else {}
            seed = meta.get("seed")
            g = Generation(
                take=take, job_id=str(meta.get("job") or job_id or "")[:48] or None,
                attempt=attempt,
                variation=meta.get("variation") if isinstance(meta.get("variation"), int) else None,
                project=self._project(s, jp.parent.parent),
                prompt=prompt,
                backend=str(meta.get("backend") or params.get("backend") or "unknown")[:32],
                model=str(meta["model"])[:128] if meta.get("model") else None,
                device=str(meta["device"])[:64] if meta.get("device") else None,
                seed=seed if isinstance(seed, int) and 0 <= seed < 2**31 else None,
                bpm=_num(meta.get("bpm")) or _num(params.get("bpm")),
                key=str(meta.get("key") or params.get("key") or "")[:32] or None,
                style=str(meta.get("style") or params.get("style") or "")[:64] or None,
                params=params, sample_rate=meta.get("sample_rate"), channels=meta.get("channels"),
                frames=meta.get("frames"), seconds=_num(meta.get("seconds")), peak_dbfs=_num(meta.get("peak_dbfs")),
                loudness_lufs=loudness,
                timings=timings, ttfa_s=_num(timings.get("ttfa_s")), host=str(meta.get("host") or "")[:255] or None,
                path=str(audio), json_path=str(jp), meta=meta,
                created_at=_take_time(take, jp.stat().st_mtime),
            )
            stems = meta.get("stems")
            if isinstance(stems, dict):
                for name, p in stems.items():
                    if isinstance(p, str):
                        g.stems.append(MidiStem(name=str(name)[:64], path=p))
            s.add(g)
            s.flush()
            gid = g.id
            if vec is not None:
                s.add(PromptEmbedding(generation_id=gid, model=self.embedder.name, dim=len(vec), vector=vec.tobytes()))
            s.commit()
        if vec is not None:
            self.index.add([gid], vec[None])
        return gid

    def _embed(self, prompt: str) -> np.ndarray | None:
        if self.embedder is None or not prompt.strip():
            return None
        return self.embedder.embed([prompt])[0]

    def add_ref(self, session_dir: str | Path, path: str | Path, kind: str = "clip") -> None:
        """Note that a session used a file (a clip loaded or played); once per (session, file)."""
        from jackgen.daemon.library.models import AudioRef

        p = str(Path(path).resolve())
        with self._write_lock, Session(self.engine) as s:
            proj = self._project(s, Path(session_dir))
            if s.scalar(select(AudioRef.id).where(AudioRef.project_id == proj.id, AudioRef.path == p)) is None:
                s.add(AudioRef(project_id=proj.id, path=p, kind=kind[:16], first_seen=time.time()))
            s.commit()

    def refs(self, session: str) -> list[dict]:
        from jackgen.daemon.library.models import AudioRef

        with Session(self.engine) as s:
            rows = s.execute(select(AudioRef.path, AudioRef.kind, AudioRef.first_seen).join(Project)
                             .where(Project.name == session).order_by(AudioRef.first_seen)).all()
        return [{"path": p, "kind": k, "first_seen": t} for p, k, t in rows]

    def import_dir(self, directory: str | Path, progress: Callable[[int, int], None] | None = None) -> dict:
        """Every take JSON under ``directory`` (a session, or the sessions folder) into the library."""
        d = Path(directory).resolve()
        files = sorted(p for p in d.rglob("audio_gen/*.json") if TAKE_RE.match(p.stem) and TRASH not in p.parts)
        skipped = 0
        before = self.count()
        for i, jp in enumerate(files):
            if self.add_take(jp) is None:
                skipped += 1
            if progress:
                progress(i + 1, len(files))
        added = self.count() - before
        known = len(files) - added - skipped
        self.index.save()
        return {"found": len(files), "added": added, "known": known, "skipped": skipped}

    def reconcile(self) -> dict:
        """At start: takes on disk the library lacks are added; rows whose audio is gone are moved
        to the trash state (their file was deleted by hand), so no row points at nothing."""
        with Session(self.engine) as s:
            known = set(s.scalars(select(Generation.json_path)))
            live = s.execute(select(Generation.id, Generation.path).where(Generation.deleted_at.is_(None))).all()
        missing = [gid for gid, p in live if not os.path.exists(p)]
        if missing:
            with self._write_lock, Session(self.engine) as s:
                for g in s.scalars(select(Generation).where(Generation.id.in_(missing))):
                    g.deleted_at, g.trash_path = time.time(), None
                s.commit()
            log.warning("library: %d take(s) whose file was deleted outside jackgen marked deleted", len(missing))
        added = 0
        if self.sessions_root.is_dir():
            for jp in self.sessions_root.glob("*/audio_gen/*.json"):
                if str(jp.resolve()) not in known and TAKE_RE.match(jp.stem):
                    if self.add_take(jp) is not None:
                        added += 1
        self.index.catch_up()
        if added:
            log.info("library: %d take(s) found on disk and added", added)
        return {"added": added, "gone": len(missing)}

    # ------------------------------------------------------------ reading
    def count(self, deleted: bool = False) -> int:
        with Session(self.engine) as s:
            q = select(func.count(Generation.id))
            if not deleted:
                q = q.where(Generation.deleted_at.is_(None))
            return int(s.scalar(q) or 0)

    def query(self, f: Filters, limit: int = 50, offset: int = 0) -> tuple[int, list[dict]]:
        if not 1 <= limit <= MAX_PAGE:
            raise LibraryError(f"limit must be 1–{MAX_PAGE}, got {limit}")
        if offset < 0:
            raise LibraryError(f"offset must be >= 0, got {offset}")
        q = select(Generation).join(Project)
        q = q.where(Generation.deleted_at.is_not(None) if f.deleted else Generation.deleted_at.is_(None))
        if f.session:
            q = q.where(Project.name == f.session)
        if f.backend:
            q = q.where(Generation.backend == f.backend)
        if f.bpm_min is not None:
            q = q.where(Generation.bpm >= f.bpm_min)
        if f.bpm_max is not None:
            q = q.where(Generation.bpm <= f.bpm_max)
        if f.key:
            q = q.where(func.lower(Generation.key) == f.key.lower())
        if f.style:
            q = q.where(Generation.style == f.style)
        if f.text:
            for word in f.text.split()[:8]:
                q = q.where(Generation.prompt.ilike(f"%{_like_escape(word)}%", escape="\\"))
        if f.since is not None:
            q = q.where(Generation.created_at >= f.since)
        if f.until is not None:
            q = q.where(Generation.created_at <= f.until)
        with Session(self.engine) as s:
            total = int(s.scalar(select(func.count()).select_from(q.subquery())) or 0)
            rows = s.scalars(q.options(selectinload(Generation.stems), selectinload(Generation.project))
                             .order_by(Generation.created_at.desc(), Generation.id.desc())
                             .limit(limit).offset(offset)).all()
            return total, [to_dict(g) for g in rows]

    def _find(self, s: Session, ident: str | int) -> Generation:
        q = select(Generation).options(selectinload(Generation.stems), selectinload(Generation.project))
        if isinstance(ident, int) or (isinstance(ident, str) and ident.isdigit()):
            g = s.scalar(q.where(Generation.id == int(ident)))
        elif isinstance(ident, str) and TAKE_RE.match(ident):
            g = s.scalar(q.where(Generation.take == ident))
        else:
            raise LibraryError(f"{ident!r} is not a take id (like 20261130-191500-a1b2c3) or a library number")
        if g is None:
            raise LibraryError(f"no take {ident} in the library", status=404)
        return g

    def get(self, ident: str | int) -> dict:
        with Session(self.engine) as s:
            return to_dict(self._find(s, ident), full=True)

    def resolve(self, ident: str) -> Path:
        """The audio file of a take (by id or library number) that is not in the trash."""
        with Session(self.engine) as s:
            g = self._find(s, ident)
            if g.deleted_at is not None:
                raise LibraryError(f"take {g.take} is in the trash (jackgen takes restore {g.take})", status=404)
            return Path(g.path)

    # ------------------------------------------------------------ delete / restore
    def delete(self, ident: str | int) -> dict:
        """Move a take's files (audio, JSON, MIDI stems) to ``<session>/.trash/<take>/``; reversible."""
        with self._write_lock, Session(self.engine) as s:
            g = self._find(s, ident)
            if g.deleted_at is not None:
                raise LibraryError(f"take {g.take} is in the trash already", status=409)
            trash = Path(g.project.path) / TRASH / g.take
            trash.mkdir(parents=True, exist_ok=True)
            for p in _files_of(g):
                if p.exists():
                    shutil.move(str(p), str(trash / p.name))
            stems_dir = Path(g.project.path) / "midi_stems" / g.take
            if stems_dir.is_dir():
                shutil.move(str(stems_dir), str(trash / "midi_stems"))
            g.deleted_at, g.trash_path = time.time(), str(trash)
            s.commit()
            return to_dict(g)

    def restore(self, ident: str | int) -> dict:
        with self._write_lock, Session(self.engine) as s:
            g = self._find(s, ident)
            if g.deleted_at is None:
                raise LibraryError(f"take {g.take} is not in the trash", status=409)
            if not g.trash_path or not Path(g.trash_path).is_dir():
                raise LibraryError(f"take {g.take}'s files are no longer in the trash: it cannot be restored",
                                   status=410)
            trash = Path(g.trash_path)
            for p in _files_of(g):
                if (trash / p.name).exists():
                    p.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(trash / p.name), str(p))
            if (trash / "midi_stems").is_dir():
                shutil.move(str(trash / "midi_stems"), str(Path(g.project.path) / "midi_stems" / g.take))
            shutil.rmtree(trash, ignore_errors=True)
            g.deleted_at, g.trash_path = None, None
            s.commit()
            return to_dict(g)

    # ------------------------------------------------------------ prompt memory
    def similar(self, prompt: str, k: int = 5) -> dict:
        """The k past generations whose prompts are nearest ``prompt``: {"mode", "results": [{score, …}]}."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise LibraryError("prompt must be non-empty text")
        if not 1 <= k <= 100:
            raise LibraryError(f"k must be 1–100, got {k}")
        if self.embedder is not None:
            vec = self.embedder.embed([prompt])[0]
            hits = self.index.search(vec, k * 2 + 8)  # deleted takes are dropped below
            mode = "embedding"
        else:
            hits = self._text_hits(prompt, k * 2 + 8)
            mode = "text"
        if not hits:
            return {"mode": mode, "results": []}
        score = dict(hits)
        with Session(self.engine) as s:
            rows = s.scalars(select(Generation).options(selectinload(Generation.project), selectinload(Generation.stems))
                             .where(Generation.id.in_(list(score)), Generation.deleted_at.is_(None))).all()
        out = sorted(({**to_dict(g), "score": round(float(score[g.id]), 4)} for g in rows),
                     key=lambda d: -d["score"])[:k]
        return {"mode": mode, "results": out}

    def _text_hits(self, prompt: str, k: int) -> list[tuple[int, float]]:
        """BM25 over prompts (FTS5 on SQLite, ts_rank on PostgreSQL); higher score = nearer."""
        words = [w for w in re.findall(r"[A-Za-z0-9]+", prompt.lower())][:32]
        if not words:
            return []
        with self.engine.connect() as c:
            if self.dialect == "sqlite":
                match = " OR ".join(f'"{w}"' for w in words)
                rows = c.execute(text("SELECT rowid, -bm25(prompt_fts) FROM prompt_fts WHERE prompt_fts MATCH :m "
                                      "ORDER BY bm25(prompt_fts) LIMIT :k"), {"m": match, "k": k}).all()
            else:
                tsq = " | ".join(words)
                rows = c.execute(text("SELECT id, ts_rank(to_tsvector('english', prompt), to_tsquery('english', :q)) "
                                      "AS r FROM generations WHERE to_tsvector('english', prompt) @@ "
                                      "to_tsquery('english', :q) ORDER BY r DESC LIMIT :k"), {"q": tsq, "k": k}).all()
        return [(int(i), float(r)) for i, r in rows]

    # ------------------------------------------------------------ preferences
    def set_preference(self, key: str, value: Any) -> None:
        from jackgen.daemon.library.models import Preference

        with self._write_lock, Session(self.engine) as s:
            s.merge(Preference(key=key, value={"v": value}))
            s.commit()

    def preference(self, key: str, default: Any = None) -> Any:
        from jackgen.daemon.library.models import Preference

        with Session(self.engine) as s:
            p = s.get(Preference, key)
            return default if p is None else p.value.get("v", default)


def _like_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _files_of(g: Generation) -> Iterable[Path]:
    yield Path(g.path)
    if g.json_path:
        yield Path(g.json_path)


def to_dict(g: Generation, full: bool = False) -> dict:
    d = {
        "id": g.id, "take": g.take, "session": g.project.name if g.project else None, "job_id": g.job_id,
        "prompt": g.prompt, "backend": g.backend, "model": g.model, "device": g.device, "seed": g.seed,
        "bpm": g.bpm, "key": g.key, "style": g.style, "seconds": g.seconds, "sample_rate": g.sample_rate,
        "channels": g.channels, "peak_dbfs": g.peak_dbfs, "loudness_lufs": g.loudness_lufs, "ttfa_s": g.ttfa_s,
        "path": g.path, "created_at": g.created_at, "deleted": g.deleted_at is not None,
        "stems": {st.name: st.path for st in g.stems},
    }
    if full:
        d.update({"params": g.params, "timings": g.timings, "host": g.host, "json_path": g.json_path,
                  "attempt": g.attempt, "variation": g.variation, "frames": g.frames, "trash_path": g.trash_path,
                  "deleted_at": g.deleted_at})
    return d

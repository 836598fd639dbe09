"""The library's tables (SQLAlchemy 2, one schema for SQLite and PostgreSQL).

The schema is made and changed only by the Alembic migrations in ``migrations/`` (run on every
start, and by ``jackgen db upgrade``); these classes describe the newest revision for queries.
Times are UNIX seconds (float), paths absolute.
"""

from __future__ import annotations

from sqlalchemy import JSON, Float, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Project(Base):
    """A session folder: its takes are its generations."""
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    path: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)


class Generation(Base):
    """One take: what made it (every parameter), what it is (format, level), where it lies."""
    __tablename__ = "generations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    take: Mapped[str] = mapped_column(String(48), unique=True)
    job_id: Mapped[str | None] = mapped_column(String(48), index=True)
    attempt: Mapped[int | None] = mapped_column(Integer)
    variation: Mapped[int | None] = mapped_column(Integer)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    prompt: Mapped[str] = mapped_column(Text, default="")
    backend: Mapped[str] = mapped_column(String(32), index=True)
    model: Mapped[str | None] = mapped_column(String(128))
    device: Mapped[str | None] = mapped_column(String(64))
    seed: Mapped[int | None] = mapped_column(Integer)
    bpm: Mapped[float | None] = mapped_column(Float, index=True)
    key: Mapped[str | None] = mapped_column(String(32), index=True)
    style: Mapped[str | None] = mapped_column(String(64), index=True)
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    sample_rate: Mapped[int | None] = mapped_column(Integer)
    channels: Mapped[int | None] = mapped_column(Integer)
    frames: Mapped[int | None] = mapped_column(Integer)
    seconds: Mapped[float | None] = mapped_column(Float)
    peak_dbfs: Mapped[float | None] = mapped_column(Float)
    loudness_lufs: Mapped[float | None] = mapped_column(Float)  # revision 0002
    timings: Mapped[dict] = mapped_column(JSON, default=dict)
    ttfa_s: Mapped[float | None] = mapped_column(Float)
    host: Mapped[str | None] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(Text)  # the audio file
    json_path: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[dict] = mapped_column(JSON, default=dict)  # the take's JSON, whole
    created_at: Mapped[float] = mapped_column(Float, index=True)
    deleted_at: Mapped[float | None] = mapped_column(Float, index=True)  # in the trash since
    trash_path: Mapped[str | None] = mapped_column(Text)

    project: Mapped[Project] = relationship()
    stems: Mapped[list[MidiStem]] = relationship(cascade="all, delete-orphan", order_by="MidiStem.id")


class MidiStem(Base):
    """A MIDI file a take was rendered from, or one of its parts."""
    __tablename__ = "midi_stems"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation_id: Mapped[int] = mapped_column(ForeignKey("generations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)


class AudioRef(Base):
    """A file a session used (a clip, a take) other than its own generations."""
    __tablename__ = "audio_refs"
    __table_args__ = (UniqueConstraint("project_id", "path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    path: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))
    first_seen: Mapped[float] = mapped_column(Float)


class PromptEmbedding(Base):
    """A generation's prompt as a unit vector (float32 bytes); the search index is built from these."""
    __tablename__ = "prompt_embeddings"  # revision 0002

    generation_id: Mapped[int] = mapped_column(ForeignKey("generations.id", ondelete="CASCADE"), primary_key=True)
    model: Mapped[str] = mapped_column(String(64))
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class Preference(Base):
    __tablename__ = "preferences"  # revision 0002

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[dict] = mapped_column(JSON)

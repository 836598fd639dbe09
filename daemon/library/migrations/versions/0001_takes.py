"""The first library: projects, generations, MIDI stems, audio references.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "generations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("take", sa.String(48), nullable=False, unique=True),
        sa.Column("job_id", sa.String(48), index=True),
        sa.Column("attempt", sa.Integer),
        sa.Column("variation", sa.Integer),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False, index=True),
        sa.Column("prompt", sa.Text, nullable=False, server_default=""),
        sa.Column("backend", sa.String(32), nullable=False, index=True),
        sa.Column("model", sa.String(128)),
        sa.Column("device", sa.String(64)),
        sa.Column("seed", sa.Integer),
        sa.Column("bpm", sa.Float, index=True),
        sa.Column("key", sa.String(32), index=True),
        sa.Column("style", sa.String(64), index=True),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("sample_rate", sa.Integer),
        sa.Column("channels", sa.Integer),
        sa.Column("frames", sa.Integer),
        sa.Column("seconds", sa.Float),
        sa.Column("peak_dbfs", sa.Float),
        sa.Column("timings", sa.JSON, nullable=False),
        sa.Column("ttfa_s", sa.Float),
        sa.Column("host", sa.String(255)),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("json_path", sa.Text),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False, index=True),
        sa.Column("deleted_at", sa.Float, index=True),
        sa.Column("trash_path", sa.Text),
    )
    op.create_table(
        "midi_stems",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("generation_id", sa.Integer, sa.ForeignKey("generations.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
    )
    op.create_table(
        "audio_refs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False, index=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("first_seen", sa.Float, nullable=False),
        sa.UniqueConstraint("project_id", "path"),
    )


def downgrade() -> None:
    for t in ("audio_refs", "midi_stems", "generations", "projects"):
        op.drop_table(t)

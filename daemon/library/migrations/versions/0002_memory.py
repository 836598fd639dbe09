"""Prompt memory and loudness: prompt embeddings, text search over prompts, preferences, LUFS.

Text search: an FTS5 table kept in step by triggers on SQLite; a GIN index over the prompt's
tsvector on PostgreSQL.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("generations") as b:
        b.add_column(sa.Column("loudness_lufs", sa.Float))
    # the library's list: a session's takes newest first, and style + tempo range (bench/library.py)
    op.create_index("ix_generations_project_created", "generations", ["project_id", "created_at"])
    op.create_index("ix_generations_style_bpm", "generations", ["style", "bpm"])
    op.create_table(
        "prompt_embeddings",
        sa.Column("generation_id", sa.Integer, sa.ForeignKey("generations.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "preferences",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("value", sa.JSON, nullable=False),
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE VIRTUAL TABLE prompt_fts USING fts5(prompt, content='generations', content_rowid='id')")
        op.execute("INSERT INTO prompt_fts(rowid, prompt) SELECT id, prompt FROM generations")
        op.execute("CREATE TRIGGER generations_fts_ai AFTER INSERT ON generations BEGIN "
                   "INSERT INTO prompt_fts(rowid, prompt) VALUES (new.id, new.prompt); END")
        op.execute("CREATE TRIGGER generations_fts_ad AFTER DELETE ON generations BEGIN "
                   "INSERT INTO prompt_fts(prompt_fts, rowid, prompt) VALUES ('delete', old.id, old.prompt); END")
        op.execute("CREATE TRIGGER generations_fts_au AFTER UPDATE OF prompt ON generations BEGIN "
                   "INSERT INTO prompt_fts(prompt_fts, rowid, prompt) VALUES ('delete', old.id, old.prompt); "
                   "INSERT INTO prompt_fts(rowid, prompt) VALUES (new.id, new.prompt); END")
    else:
        op.execute("CREATE INDEX generations_prompt_tsv ON generations USING gin (to_tsvector('english', prompt))")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for t in ("generations_fts_ai", "generations_fts_ad", "generations_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {t}")
        op.execute("DROP TABLE IF EXISTS prompt_fts")
    else:
        op.execute("DROP INDEX IF EXISTS generations_prompt_tsv")
    op.drop_index("ix_generations_style_bpm", "generations")
    op.drop_index("ix_generations_project_created", "generations")
    op.drop_table("preferences")
    op.drop_table("prompt_embeddings")
    with op.batch_alter_table("generations") as b:
        b.drop_column("loudness_lufs")

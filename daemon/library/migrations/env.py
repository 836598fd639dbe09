"""Alembic's entry point for the library's migrations: run with the connection jackgen hands it
(``jackgen.daemon.library.store.upgrade``), never from an alembic.ini."""

from alembic import context

from jackgen.daemon.library.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()

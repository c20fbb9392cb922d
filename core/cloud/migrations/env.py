"""Alembic environment: always run programmatically (core.cloud.database.upgrade) on a connection it passes in."""
from alembic import context

from core.cloud.schema import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()

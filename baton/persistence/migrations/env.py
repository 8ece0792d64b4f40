"""Alembic environment: migrations run on the connection `baton.persistence.migrate` hands in."""

from alembic import context

from baton.persistence.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with 'baton db upgrade', which supplies the database connection")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()

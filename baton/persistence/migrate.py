"""Alembic migrations, run programmatically on an async engine (`baton db upgrade`)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the database schema up to `revision`; one migration at a time per SQLite file."""
    async with _migrating_alone(engine):
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync_conn: command.upgrade(alembic_config(sync_conn), revision))


@contextlib.asynccontextmanager
async def _migrating_alone(engine: AsyncEngine) -> AsyncIterator[None]:
    """Hold a lock file beside an SQLite database while migrating it: two processes (or two
    engines) migrating a fresh file at once would both create its tables, and one would fail."""
    database = engine.url.database
    if not engine.url.drivername.startswith("sqlite") or not database or database == ":memory:":
        yield
        return
    fd = os.open(f"{database}.migrate-lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at; None before the first upgrade."""
    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())

"""The app database schema, made ready on first use where Baton owns the database."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from .migrate import upgrade


class Schema:
    """Migrates the embedded SQLite database once, on first use; a PostgreSQL database is migrated
    by `baton db upgrade` (a deploy step), never by every worker at once."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._auto = engine.url.drivername.startswith("sqlite")
        self._ready: asyncio.Future[None] | None = None

    async def ready(self) -> None:
        if not self._auto:
            return
        if self._ready is None:
            self._ready = asyncio.ensure_future(upgrade(self.engine))
        try:
            await asyncio.shield(self._ready)
        except Exception:
            self._ready = None  # a failed migration is tried again by the next caller
            raise

"""The app database schema, made ready on first use where Baton owns the database."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from ..aio import of_this_loop
from .migrate import upgrade


class Schema:
    """Migrates the embedded SQLite database once, on first use; a PostgreSQL database is migrated
    by `baton db upgrade` (a deploy step), never by every worker at once."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._auto = engine.url.drivername.startswith("sqlite")
        self._ready: asyncio.Future[None] | None = None
        self._migrated = False

    async def ready(self) -> None:
        if not self._auto or self._migrated:
            return
        ready = of_this_loop(self._ready)
        if ready is None:
            ready = self._ready = asyncio.ensure_future(upgrade(self.engine))
        try:
            await asyncio.shield(ready)
        except Exception:
            self._ready = None  # a failed migration is tried again by the next caller
            raise
        self._migrated = True

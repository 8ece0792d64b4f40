"""The idempotency ledger: every execution of a chaos step or tool, as a row in PostgreSQL.

A row is written when an execution starts and marked finished when its side effect is done, keyed
by the Temporal run, the activity and the attempt, so the suite counts executions instead of
guessing them. The ledger lives in a database of its own on the machine's PostgreSQL, which the
suite never faults (the app database Baton uses is a separate, private server).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from temporalio import activity

LEDGER_ENV = "BATON_CHAOS_LEDGER"
"""The ledger database's DSN, set for every worker the suite starts."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    id bigserial PRIMARY KEY,
    kind text NOT NULL,
    name text NOT NULL,
    workflow_id text NOT NULL,
    run_id text NOT NULL,
    activity_id text NOT NULL,
    attempt int NOT NULL,
    pid int NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz
)
"""

_pool: asyncpg.Pool | None = None


async def _shared_pool() -> asyncpg.Pool:
    global _pool
    if _pool is None:
        _pool = await asyncpg.create_pool(os.environ[LEDGER_ENV], min_size=1, max_size=8)
    return _pool


@contextlib.asynccontextmanager
async def execution(kind: str, name: str) -> AsyncIterator[None]:
    """Record the running activity's execution of `name`: started now, finished when the block
    ends without an exception."""
    info = activity.info()
    pool = await _shared_pool()
    row = await pool.fetchval(
        "INSERT INTO executions (kind, name, workflow_id, run_id, activity_id, attempt, pid)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        kind,
        name,
        info.workflow_id,
        info.workflow_run_id,
        info.activity_id,
        info.attempt,
        os.getpid(),
    )
    yield
    await pool.execute("UPDATE executions SET finished_at = clock_timestamp() WHERE id = $1", row)


@dataclass(frozen=True)
class Execution:
    kind: str
    name: str
    workflow_id: str
    run_id: str
    activity_id: str
    attempt: int
    pid: int
    started_at: datetime
    finished_at: datetime | None


class Ledger:
    """The suite's side of the ledger: a fresh database, created and dropped by the suite."""

    def __init__(self, admin_dsn: str, name: str) -> None:
        self.admin_dsn = admin_dsn
        self.dsn = f"{admin_dsn.rsplit('/', 1)[0]}/{name}"
        self.name = name

    async def create(self) -> None:
        await self._admin(f'CREATE DATABASE "{self.name}"')
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(SCHEMA)
        finally:
            await conn.close()

    async def drop(self) -> None:
        await self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    async def _admin(self, sql: str) -> None:
        admin = await asyncpg.connect(self.admin_dsn)
        try:
            await admin.execute(sql)
        finally:
            await admin.close()

    async def executions(self) -> list[Execution]:
        conn = await asyncpg.connect(self.dsn)
        try:
            rows = await conn.fetch(
                "SELECT kind, name, workflow_id, run_id, activity_id, attempt, pid, started_at,"
                " finished_at FROM executions ORDER BY id"
            )
        finally:
            await conn.close()
        return [Execution(**dict(r)) for r in rows]

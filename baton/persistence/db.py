"""The app database: one async engine per process, PostgreSQL (asyncpg, pooled) or SQLite."""

from __future__ import annotations

import asyncio
import functools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext import asyncio as sa_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from ..errors import Unavailable
from ..settings import BatonSettings

SUPPORTED_DRIVERS = ("postgresql+asyncpg", "sqlite+aiosqlite")
SQLITE_BUSY_SECONDS = 30
"""How long an SQLite connection waits for another's write lock before giving up."""


def parse_url(url: str) -> URL:
    """`url` parsed; an error that names the setting, never the URL (it may hold a password)."""
    try:
        return make_url(url)
    except ArgumentError:
        raise ValueError(
            "BATON_DATABASE_URL is not a database URL: expected e.g. postgresql+asyncpg://user@host/db"
        ) from None


def create_engine(url: str, pool_size: int = 10, timeout_seconds: float = 30) -> AsyncEngine:
    """An async engine for `url`; SQLite files get their folder created. On PostgreSQL, a
    connection attempt or a statement that waits more than `timeout_seconds` for the server
    fails with `Unavailable`."""
    parsed = parse_url(url)
    if parsed.drivername not in SUPPORTED_DRIVERS:
        raise ValueError(
            f"database URL driver {parsed.drivername!r} is not supported; use one of {', '.join(SUPPORTED_DRIVERS)}"
        )
    if parsed.drivername.startswith("sqlite"):
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        engine = sa_asyncio.create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_SECONDS})
        event.listen(engine.sync_engine, "connect", _write_ahead_log)
    else:
        engine = sa_asyncio.create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            connect_args={"timeout": timeout_seconds, "command_timeout": timeout_seconds},
        )
        unanswered = f"the app database at {parsed.host}:{parsed.port or 5432} did not answer"
        event.listen(engine.sync_engine, "do_connect", functools.partial(_connect, unanswered))
        event.listen(engine.sync_engine, "handle_error", functools.partial(_lost, unanswered))
        _ping_times_out_as_a_disconnect(engine)
    return engine


def _ping_times_out_as_a_disconnect(engine: AsyncEngine) -> None:
    """The pool's pre-ping of a connection to a server that stopped answering times out with a
    bare `TimeoutError`, which the pool passes to the caller as it is. As a driver error it is a
    disconnect instead: the pool connects afresh, and that attempt says `Unavailable` if the
    server still does not answer."""
    dialect = engine.dialect
    ping = dialect.do_ping

    def do_ping(dbapi_connection: Any) -> bool:
        try:
            return ping(dbapi_connection)
        except OSError as e:  # TimeoutError included
            raise dialect.loaded_dbapi.InterfaceError("the ping was not answered") from e

    dialect.do_ping = do_ping  # type: ignore[method-assign]


# asyncpg's errors for a server that cannot be reached, is starting or stopping, or cut a
# connection off mid-operation. A connection left "in another operation" by a server that went
# away mid-query is one of them: SQLAlchemy would return it to the pool as sound (sqlalchemy#13241).
_UNREACHABLE = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.InterfaceError,
)


def _unreachable(error: BaseException) -> bool:
    # SQLAlchemy's adapter raises its own class, from asyncpg's.
    return isinstance(error, _UNREACHABLE) or isinstance(error.__cause__, _UNREACHABLE)


def _connect(unanswered: str, dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
    """Connect; a server that cannot be reached (or is starting or stopping) is `Unavailable`."""
    try:
        return dialect.connect(*cargs, **cparams)
    except Exception as e:
        if _unreachable(e):
            raise Unavailable(f"{unanswered} ({_reason(e)}); try again") from e
        raise


def _lost(unanswered: str, context: ExceptionContext) -> Exception | None:
    """A connection lost mid-operation is dropped from the pool, and the caller gets
    `Unavailable` (try again later) rather than a driver error."""
    cause = context.original_exception
    if not isinstance(cause, Exception) or isinstance(cause, asyncio.CancelledError):
        return None  # a cancelled task or a timeout of the caller's own stays what it is
    if not (context.is_disconnect or _unreachable(cause)):
        return None
    context.is_disconnect = True
    if context.is_pre_ping:  # a stale pooled connection: the pool connects afresh by itself
        return None
    return Unavailable(f"{unanswered} ({_reason(cause)}); try again")


def _reason(error: BaseException) -> str:
    return (str(error).splitlines() or [""])[0][:200] or type(error).__name__


def _write_ahead_log(dbapi_connection: Any, _record: Any) -> None:
    """SQLite in WAL mode: readers and the writer do not block each other, so the processes and
    tasks sharing the embedded database (workers, clients, the codec server) wait less."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def engine_from_settings(settings: BatonSettings) -> AsyncEngine:
    return create_engine(
        settings.resolved_database_url, settings.database_pool_size, settings.database_timeout_seconds
    )


def as_utc(at: datetime) -> datetime:
    """A timestamp read back from the app database, in UTC: SQLite hands back naive datetimes,
    and every one Baton writes is UTC."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)

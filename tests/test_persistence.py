"""The app database on SQLite and PostgreSQL: migrations and versioned process definitions."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from baton.errors import Unavailable
from baton.persistence.db import create_engine
from baton.persistence.definitions import DefinitionNotFound, DefinitionStore
from baton.persistence.migrate import current_revision, upgrade
from baton.persistence.schema import Schema
from baton.settings import BatonSettings
from baton.starter import BatonClient
from baton.testing import ProcessEnvironment, free_port
from tests.chaos.stack import Postgres
from tests.conftest import POSTGRES_ADMIN_DSN, _postgres_admin
from tests.steps import ALLOWED, approval_process, upper_only


def unique_name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


async def test_migrations_reach_head_and_are_idempotent(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        assert await current_revision(engine) == "0009"
        await upgrade(engine)  # again: nothing to do, nothing broken
        assert await current_revision(engine) == "0009"
    finally:
        await engine.dispose()


async def test_subject_keys_from_before_generations_keep_their_key_ids(tmp_path: Path) -> None:
    """Payloads sealed before key generations name the subject's reference as their key ID: the
    migration keeps that ID (generation 0), and the runs bound to it, on both databases."""
    database = f"baton_old_{uuid.uuid4().hex[:8]}"
    await _postgres_admin(f'CREATE DATABASE "{database}"')
    postgres = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    for url in (f"sqlite+aiosqlite:///{tmp_path / 'old.db'}", f"{postgres}/{database}"):
        engine = create_engine(url)
        try:
            await upgrade(engine, "0004")
            ref = uuid.uuid4().hex * 2
            async with engine.begin() as conn:
                await conn.execute(
                    sa.text(
                        "INSERT INTO data_subject_keys (ref, wrapped_key, created_at) VALUES (:r, :k, :at)"
                    ),
                    {"r": ref, "k": b"wrapped", "at": datetime.now(UTC)},
                )
                await conn.execute(
                    sa.text("INSERT INTO workflow_subjects (workflow_id, subject_ref) VALUES (:w, :r)"),
                    {"w": f"agent-Old-{ref[:8]}", "r": ref},
                )
            await upgrade(engine)
            async with engine.connect() as conn:
                key = (
                    await conn.execute(
                        sa.text("SELECT key_id, generation, wrapped_key FROM subject_keys WHERE ref = :r"),
                        {"r": ref},
                    )
                ).one()
                bound = (
                    await conn.execute(
                        sa.text("SELECT key_id FROM workflow_subjects WHERE subject_ref = :r"), {"r": ref}
                    )
                ).scalar()
            assert tuple(key) == (ref, 0, b"wrapped") and bound == ref
        finally:
            await engine.dispose()
    await _postgres_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


async def test_deploy_adds_versions_and_latest_wins(database_url: str) -> None:
    engine = create_engine(database_url)
    store = DefinitionStore(Schema(engine))
    name = unique_name("Versioned")
    try:
        first = approval_process(name).build(ALLOWED).to_definition()
        second = first.model_copy(update={"description": "second"})
        assert await store.deploy(first) == 1
        assert await store.deploy(second) == 2
        assert [d.version for d in await store.versions(name)] == [1, 2]
        latest = await store.get(name)
        assert latest.version == 2 and latest.definition == second
        assert latest.created_at.tzinfo is not None
        assert (await store.get(name, 1)).definition == first
        with pytest.raises(DefinitionNotFound, match="no deployed version 9 of process"):
            await store.get(name, 9)
        with pytest.raises(DefinitionNotFound, match="no deployed process 'Missing'"):
            await store.get("Missing")
    finally:
        await engine.dispose()


async def test_concurrent_deploys_get_distinct_versions(database_url: str) -> None:
    engine = create_engine(database_url)
    store = DefinitionStore(Schema(engine))
    definition = approval_process(unique_name("Racing")).build(ALLOWED).to_definition()
    try:
        versions = await asyncio.gather(*(store.deploy(definition) for _ in range(4)))
        assert sorted(versions) == [1, 2, 3, 4]
    finally:
        await engine.dispose()


async def test_a_running_process_keeps_the_definition_it_started_with(temporal, settings, journal) -> None:
    settings = settings.model_copy(
        update={"database_url": SecretStr(f"sqlite+aiosqlite:///{settings.data_dir / 'app.db'}")}
    )
    engine = create_engine(settings.resolved_database_url)
    await upgrade(engine)
    store = DefinitionStore(Schema(engine))
    name = unique_name("Evolving")
    try:
        assert await store.deploy(approval_process(name).build(ALLOWED).to_definition()) == 1
        async with ProcessEnvironment(settings=settings, client=temporal.client) as env:
            old_run = await env.start(name, "Start", "doc")
            assert (await old_run.state()).version == 1
            # Version 2 drops the approval; workers are not redeployed.
            assert await store.deploy(upper_only(name).build(ALLOWED).to_definition()) == 2
            new_run = await env.start(name, "Start", "doc")
            assert (await new_run.result()).output == "DOC"
            assert (await new_run.state()).version == 2
            await old_run.send_event("ApprovalReceived", {"approved": True})
            assert (await old_run.result()).output == "DOC:approved"
    finally:
        await engine.dispose()


async def test_an_undeployed_process_is_named(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        with pytest.raises(
            DefinitionNotFound, match="no deployed process 'Nope'; deploy it with 'baton process deploy'"
        ):
            await DefinitionStore(Schema(engine)).load_process("Nope", BatonSettings(step_modules=ALLOWED))
    finally:
        await engine.dispose()


async def test_two_engines_migrating_a_fresh_sqlite_file_at_once_both_succeed(tmp_path: Path) -> None:
    """Two processes starting on the embedded default at once (`baton dev` and a worker) each
    migrate the new file: the second waits for the first, then finds nothing to do."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'baton.db'}"
    engines = [create_engine(url) for _ in range(3)]
    try:
        await asyncio.gather(*(upgrade(engine) for engine in engines))
        assert await current_revision(engines[0]) == "0009"
    finally:
        for engine in engines:
            await engine.dispose()


async def test_a_database_that_does_not_answer_is_unavailable_not_a_driver_error(
    temporal: WorkflowEnvironment, tmp_path: Path
) -> None:
    """Callers (the API, the CLI, a service) learn to try again later, from Baton's own error,
    which names the database's host but never its password."""
    port = free_port()  # nothing listens there: as while PostgreSQL restarts
    engine = create_engine(f"postgresql+asyncpg://baton:s3cret@127.0.0.1:{port}/baton")
    try:
        with pytest.raises(Unavailable, match=f"the app database at 127.0.0.1:{port} did not answer") as e:
            await DefinitionStore(Schema(engine)).latest()
        assert "s3cret" not in str(e.value) and isinstance(e.value.__cause__, OSError | DBAPIError)
    finally:
        await engine.dispose()

    settings = BatonSettings(
        data_dir=tmp_path, database_url=f"postgresql+asyncpg://baton@127.0.0.1:{port}/baton"
    )
    client = BatonClient(temporal.client, settings)
    with pytest.raises(Unavailable):  # so a start it could not audit is refused as Unavailable
        await client.audit("run.start", "process-x")
    await client.close()


async def test_a_postgresql_restart_under_load_surfaces_only_unavailable() -> None:
    """Queries in flight while the server restarts fail as `Unavailable` (never a driver error a
    caller cannot tell from a bug), and once it is back, every query succeeds again."""
    server = Postgres()
    await asyncio.to_thread(server.start)
    engine = create_engine(server.url, pool_size=4)
    errors: Counter[str] = Counter()
    restarting = True

    async def query() -> None:
        while restarting:
            try:
                async with engine.connect() as conn:
                    await conn.execute(sa.text("SELECT pg_sleep(0.005)"))
            except Unavailable:
                errors["Unavailable"] += 1
            except Exception as e:
                errors[f"{type(e).__module__}.{type(e).__name__}: {str(e)[:120]}"] += 1
            await asyncio.sleep(0.001)

    try:
        queries = [asyncio.create_task(query()) for _ in range(8)]
        for _ in range(3):
            await asyncio.sleep(0.3)
            await asyncio.to_thread(server.restart)
        await asyncio.sleep(0.3)
        restarting = False
        await asyncio.gather(*queries)
        assert set(errors) == {"Unavailable"}, errors
        for _ in range(20):  # no connection cut by a restart went back to the pool as sound
            async with engine.connect() as conn:
                assert await conn.scalar(sa.text("SELECT 1")) == 1
    finally:
        await engine.dispose()
        await asyncio.to_thread(server.stop)


async def test_a_postgresql_that_stops_answering_fails_calls_after_the_timeout() -> None:
    """A partition: the server holds its connections open and answers nothing. Calls fail with
    `Unavailable` after the timeout instead of waiting as long as the partition lasts."""
    server = Postgres()
    await asyncio.to_thread(server.start)
    engine = create_engine(server.url, timeout_seconds=1)
    try:
        async with engine.connect() as conn:  # a pooled connection, to be frozen mid-use
            await conn.execute(sa.text("SELECT 1"))
        server.freeze()
        for _ in range(2):  # the pooled connection, then a new one
            with pytest.raises(Unavailable, match="did not answer"):
                await asyncio.wait_for(_select_one(engine), 20)
        server.thaw()
        assert await _select_one(engine) == 1
    finally:
        await engine.dispose()
        await asyncio.to_thread(server.stop)


async def _select_one(engine: AsyncEngine) -> Any:
    async with engine.connect() as conn:
        return await conn.scalar(sa.text("SELECT 1"))


async def test_a_cancelled_query_stays_cancelled() -> None:
    """Cancelling a caller's task, or its own timeout, is not the database failing."""
    base = POSTGRES_ADMIN_DSN.replace("postgresql://", "postgresql+asyncpg://")
    engine = create_engine(base)
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(_sleep_in_the_database(engine), 0.2)
        assert await _select_one(engine) == 1
    finally:
        await engine.dispose()


async def _sleep_in_the_database(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(sa.text("SELECT pg_sleep(5)"))

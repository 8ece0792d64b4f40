"""The app database on SQLite and PostgreSQL: migrations and versioned process definitions."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from pydantic import SecretStr

from baton.persistence.db import create_engine, session_factory
from baton.persistence.definitions import DefinitionNotFound, DefinitionStore
from baton.persistence.migrate import current_revision, upgrade
from baton.testing import ProcessEnvironment
from tests.steps import ALLOWED, approval_process, upper_only


def unique_name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


async def test_migrations_reach_head_and_are_idempotent(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        assert await current_revision(engine) == "0004"
        await upgrade(engine)  # again: nothing to do, nothing broken
        assert await current_revision(engine) == "0004"
    finally:
        await engine.dispose()


async def test_deploy_adds_versions_and_latest_wins(database_url: str) -> None:
    engine = create_engine(database_url)
    store = DefinitionStore(session_factory(engine))
    name = unique_name("Versioned")
    try:
        first = approval_process(name).build(ALLOWED).to_definition()
        second = first.model_copy(update={"description": "second"})
        assert await store.deploy(first) == 1
        assert await store.deploy(second) == 2
        assert await store.versions(name) == [1, 2]
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
    store = DefinitionStore(session_factory(engine))
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
    store = DefinitionStore(session_factory(engine))
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
            await DefinitionStore(session_factory(engine)).load_process("Nope", ALLOWED)
    finally:
        await engine.dispose()

"""Fixtures on real parts: one Temporal dev server per session, PostgreSQL and SQLite databases."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from baton.persistence.db import create_engine
from baton.persistence.migrate import upgrade
from baton.settings import BatonSettings
from baton.telemetry.logs import JsonFormatter
from baton.temporal import (
    settings_converter,
    with_converter,
)
from baton.testing import ProcessEnvironment, start_dev_server
from tests.steps import JOURNAL_ENV

REPO = Path(__file__).parents[1]
POSTGRES_ADMIN_DSN = os.environ.get("BATON_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


LEAKS = {
    "an email address": re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),
    "a JWT": re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}"),
    "a bearer token": re.compile(r"Bearer\s+[A-Za-z0-9._~+/-]{20,}"),
    "an API key of the tests": re.compile(r"sk-test-key|ak-test-key"),
}


@pytest.fixture(scope="session", autouse=True)
def no_secret_or_pii_in_any_log_line() -> Iterator[None]:
    """Every log line the whole test run writes, as JSON lines go out in a deployment (INFO and
    up, Baton's and Temporal's loggers): none may hold an email address, a token or a key."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.setLevel(logging.INFO)
    loggers = [
        logging.getLogger(name) for name in ("baton", "temporalio", "uvicorn")
    ]  # httpx: see logs.URL_LOGGERS
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)
    leaks = [
        f"{what}: {line[:300]}"
        for line in stream.getvalue().splitlines()
        for what, pattern in LEAKS.items()
        if pattern.search(line)
    ]
    assert not leaks, "log lines that leak:\n" + "\n".join(leaks[:20])


@pytest.fixture(scope="session")
async def temporal() -> AsyncIterator[WorkflowEnvironment]:
    env = await start_dev_server()
    yield env
    await env.shutdown()


@pytest.fixture
def temporal_client(temporal: WorkflowEnvironment) -> Client:
    return temporal.client


@pytest.fixture
def settings(tmp_path: Path) -> BatonSettings:
    """Settings of one test: its own queues (so tests never share workers) and data folder;
    steps on the workflows queue, as by default."""
    suffix = uuid.uuid4().hex[:8]
    return BatonSettings(
        data_dir=tmp_path / ".baton",
        workflows_queue=f"test-workflows-{suffix}",
        llm_queue=f"test-llm-{suffix}",
        step_modules=["baton.examples", "tests"],
    )


@pytest.fixture
async def baton_temporal(temporal: WorkflowEnvironment, settings: BatonSettings) -> AsyncIterator[Client]:
    """The session's server, with this test's Baton data converter (its keys, its payload store)."""
    engine = create_engine(settings.resolved_database_url)
    yield with_converter(temporal.client, settings_converter(settings, engine))
    await engine.dispose()


def baton_worker(
    temporal_address: str, settings: BatonSettings, queues: list[str], **env: str
) -> subprocess.Popen:
    """`baton worker` for `queues` in its own OS process (to kill it for real), configured like
    `settings`, with `env` on top."""
    environment = {
        **os.environ,
        "BATON_TEMPORAL_ADDRESS": temporal_address,
        "BATON_WORKFLOWS_QUEUE": settings.workflows_queue,
        **({"BATON_STEPS_QUEUE": settings.steps_queue} if settings.steps_queue else {}),
        "BATON_LLM_QUEUE": settings.llm_queue,
        "BATON_STEP_MODULES": json.dumps(settings.step_modules),
        "BATON_DATA_DIR": str(settings.data_dir),
        **env,
    }
    command = [sys.executable, "-m", "baton.starter.cli", "worker", "--queues", *queues]
    return subprocess.Popen(
        command, env=environment, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


class Journal:
    """Side effects that steps record, read back to count how often each ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> list[str]:
        return self.path.read_text().splitlines() if self.path.exists() else []

    def count(self, entry: str) -> int:
        return self.entries().count(entry)


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Journal:
    path = tmp_path / "journal.txt"
    monkeypatch.setenv(JOURNAL_ENV, str(path))
    return Journal(path)


@pytest.fixture
async def env(
    temporal: WorkflowEnvironment, settings: BatonSettings, journal: Journal
) -> AsyncIterator[ProcessEnvironment]:
    """A worker on the session's dev server, serving this test's own queues."""
    async with ProcessEnvironment(settings=settings, client=temporal.client) as process_env:
        yield process_env


async def _postgres_admin(sql: str) -> None:
    conn = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def postgres_database() -> AsyncIterator[str]:
    """A fresh PostgreSQL database for the session, dropped afterwards."""
    name = f"baton_test_{uuid.uuid4().hex[:10]}"
    await _postgres_admin(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    yield f"{base}/{name}"
    await _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_database: str
) -> AsyncIterator[str]:
    """A migrated app database: SQLite in a temporary folder, and PostgreSQL on localhost."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'baton.db'}" if request.param == "sqlite" else postgres_database
    engine = create_engine(url)
    await upgrade(engine)
    await engine.dispose()
    yield url

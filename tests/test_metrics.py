"""Metrics: what a worker's `/metrics` shows after real runs (Baton's, the process's and the
Temporal SDK's), counted once however often a run replays, with bounded label values; the
API's and the codec server's `/metrics`; the memory warning."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from baton.agents import AgentSpec
from baton.compliance import Processing
from baton.compliance.gauges import refresh
from baton.persistence.db import create_engine
from baton.settings import BatonSettings
from baton.starter.client import BatonClient
from baton.starter.devserver import api_server, codec_server, serving
from baton.telemetry.metrics import RETENTION_DUE, SUBJECT_REQUESTS, metrics_app, watch_memory
from baton.temporal import connect
from baton.testing import ProcessEnvironment, free_port
from baton.workers.worker import running_workers
from baton.workflows.agent import AgentWorkflow
from tests.steps import upper_only

UUID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}")


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    return sum(v for (n, ls), v in found.items() if n == name and set(labels.items()) <= ls)


async def test_a_workers_metrics_show_agents_processes_and_the_sdk_counted_once(
    temporal: WorkflowEnvironment, settings: BatonSettings, tmp_path: Path
) -> None:
    address = temporal.client.service_client.config.target_host
    settings = settings.model_copy(update={"temporal_address": address})
    agent = AgentSpec(name=f"Counted{uuid.uuid4().hex[:6]}", instructions="Answer briefly.")
    process = upper_only(f"Metered{uuid.uuid4().hex[:6]}").build(["tests"])
    client = await connect(settings)  # the process's runtime: the SDK's metrics too
    baton = BatonClient(client, settings)
    try:
        async with (
            running_workers(client, settings),
            serving(metrics_app(settings, client), "127.0.0.1", free_port(), "metrics endpoint") as url,
        ):
            answered = await baton.start_agent(agent, "hello")
            await answered.result()
            run = await baton.start_process(process, "Start", "x")
            await run.result()
            async with httpx.AsyncClient() as http:
                assert (await http.get(f"{url}/healthz")).json() == {"status": "alive"}
                assert (await http.get(f"{url}/readyz")).json() == {"status": "ready"}
                scraped = await http.get(f"{url}/metrics")
            assert scraped.headers["content-type"].startswith("text/plain")
            found = samples(scraped.text)

            history = await answered.fetch_history()
            before = value(found, "baton_agent_execution_success_total", agent=agent.name)
            await Replayer(workflows=[AgentWorkflow], data_converter=client.data_converter).replay_workflow(
                history
            )
            async with httpx.AsyncClient() as http:
                replayed = samples((await http.get(f"{url}/metrics")).text)
    finally:
        await baton.close()

    assert before == 1
    assert value(replayed, "baton_agent_execution_success_total", agent=agent.name) == 1  # not again
    assert (
        value(
            found, "baton_agent_execution_duration_seconds_count", agent=agent.name, operation="AgentWorkflow"
        )
        == 1
    )
    assert value(found, "baton_process_runs_total", process=process.name, outcome="started") == 1
    assert value(found, "baton_process_runs_total", process=process.name, outcome="completed") == 1
    assert value(found, "baton_process_step_duration_seconds_count", process=process.name, step="Upper") == 1
    assert value(found, "process_resident_memory_bytes") > 0
    sdk = {name for name, _ in found if name.startswith("temporal_")}
    assert any("schedule_to_start" in name for name in sdk), sorted(sdk)[:20]

    # Bounded labels: no run's ID, no UUID, no long free text in any of Baton's metrics.
    run_ids = {answered.id, run.id}
    for (name, labels), _ in found.items():
        if not name.startswith("baton_"):
            continue
        for label, text in labels:
            assert text not in run_ids and not UUID.search(text) and len(text) <= 100, (name, label, text)


async def test_the_api_and_the_codec_server_serve_metrics(
    settings: BatonSettings, temporal: WorkflowEnvironment
) -> None:
    async with codec_server(settings, port=free_port()) as codec, httpx.AsyncClient() as http:
        await http.post(f"{codec.url}/decode", json={"payloads": []})  # refused: no token
        text = (await http.get(f"{codec.url}/metrics")).text
        assert (await http.get(f"{codec.url}/healthz")).json() == {"status": "alive"}
    assert value(samples(text), "baton_codec_requests_total", operation="decode", outcome="refused") >= 1
    api_settings = settings.model_copy(
        update={"temporal_address": temporal.client.service_client.config.target_host}
    )
    async with api_server(api_settings, port=free_port()) as url, httpx.AsyncClient() as http:
        text = (await http.get(f"{url}/metrics")).text
    assert value(samples(text), "process_resident_memory_bytes") > 0
    assert any(name.startswith("temporal_") for name, _ in samples(text))


async def test_memory_above_the_threshold_is_a_warning_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "baton.telemetry.metrics")
    watching = asyncio.create_task(watch_memory(limit_bytes=1, every_seconds=0.01))
    await asyncio.sleep(0.1)
    watching.cancel()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "above the 0 MB warning threshold" in warnings[0].getMessage()


async def test_the_compliance_gauges_show_the_retention_backlog(
    temporal: WorkflowEnvironment, settings: BatonSettings
) -> None:
    """A record past its due date and not yet deleted is the backlog the gauge shows; a hold
    takes it out of the count."""
    async with ProcessEnvironment(settings=settings, client=temporal.client) as env:
        records = env.client.records
        processing = Processing(purpose="support", legal_basis="contract", retention_days=1)
        subject = f"backlog-{uuid.uuid4().hex}@example.com"
        record = await records.record(subject, processing, None, "tests")
        await refresh(env.temporal, records)
        before = RETENTION_DUE._value.get()
        engine = create_engine(settings.resolved_database_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    sa.text("UPDATE processing_records SET due_at = :past WHERE subject_ref = :ref"),
                    {"past": datetime.now(UTC) - timedelta(days=1), "ref": record.subject_ref},
                )
        finally:
            await engine.dispose()
        await refresh(env.temporal, records)
        assert RETENTION_DUE._value.get() == before + 1
        assert SUBJECT_REQUESTS.labels("open")._value.get() >= 0
        await records.hold(
            record.subject_ref, await records.file_note(record.subject_ref, "litigation"), "tests"
        )
        await refresh(env.temporal, records)
        assert RETENTION_DUE._value.get() == before


async def test_a_worker_whose_temporal_is_gone_is_alive_but_not_ready(settings: BatonSettings) -> None:
    gone = await Client.connect(f"127.0.0.1:{free_port()}", lazy=True)  # nothing listens there
    async with (
        serving(metrics_app(settings, gone), "127.0.0.1", free_port(), "metrics endpoint") as url,
        httpx.AsyncClient() as http,
    ):
        assert (await http.get(f"{url}/healthz")).status_code == 200  # no restart for Temporal's outage
        unready = await http.get(f"{url}/readyz")
    assert unready.status_code == 503 and unready.json()["status"] == "unavailable"

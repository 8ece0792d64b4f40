"""Large contexts travel out of band: history stays small, stored payloads are sealed."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from temporalio.api.history.v1 import History
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from baton.agents import AgentSpec
from baton.persistence.db import create_engine
from baton.settings import BatonSettings
from baton.testing import ProcessEnvironment
from tests.agent_workflows import ManyCallsInput, ManyLargeCallsWorkflow

CALLS = 200
CONTEXT_BYTES = 100 * 1024


async def test_200_calls_with_100_kb_contexts_keep_history_under_2_mb(
    temporal: WorkflowEnvironment, settings: BatonSettings
) -> None:
    reader = AgentSpec(name="Reader", instructions="You are a reader.", pii="off", cache="never")
    async with ProcessEnvironment(settings=settings, client=temporal.client) as env:
        queue = f"{settings.workflows_queue}-large"
        async with Worker(env.temporal, task_queue=queue, workflows=[ManyLargeCallsWorkflow]):
            handle = await env.temporal.start_workflow(
                ManyLargeCallsWorkflow.run,
                ManyCallsInput(
                    agent=reader, calls=CALLS, context_bytes=CONTEXT_BYTES, llm_queue=settings.llm_queue
                ),
                id=f"large-contexts-{uuid.uuid4()}",
                task_queue=queue,
            )
            assert await handle.result() == CALLS
            history = await handle.fetch_history()

    size = History(events=history.events).ByteSize()
    assert size < 2 * 1024 * 1024, f"history is {size / 1e6:.1f} MB"
    engine = create_engine(settings.resolved_database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.text("SELECT data, size FROM stored_payloads"))).all()
            owners = set(
                (await conn.execute(sa.text("SELECT namespace, workflow_id FROM stored_payloads"))).all()
            )
    finally:
        await engine.dispose()
    # Compressed (about 2:1), then encrypted: still far above the offload threshold.
    assert len(rows) >= CALLS and all(size >= CONTEXT_BYTES // 3 for _, size in rows)
    assert not any(b"Document 7." in data for data, _ in rows)
    # Each entry knows its run, so it goes when the run's history does (see test_compliance).
    assert owners == {("default", handle.id)}

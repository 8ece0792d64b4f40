"""Workflow history with large LLM contexts: Baton's out-of-band payloads against inline ones.

One workflow makes N LLM calls (the local model), each with its own 100 KB context, as a long
document chat would. Run twice on one dev server: with Baton's data converter (payloads of
`payload_offload_bytes` and more stored, sealed, in the app database; history keeps references)
and with the plain converter (everything inline in the history, as the OpenAI Agents and
pydantic-ai Temporal integrations do).

Run: make bench   (or: .venv/bin/python bench/large_contexts.py)
The last line:
  large_contexts calls=N history_mb=<Baton> inline_history_mb=<plain> ratio=<Baton/plain>
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from temporalio.api.history.v1 import History
from temporalio.client import Client
from temporalio.worker import Worker

from baton.agents import AgentSpec
from baton.persistence.db import engine_from_settings
from baton.settings import BatonSettings
from baton.temporal import (
    settings_converter,
    with_converter,
)
from baton.testing import start_dev_server
from baton.workers.worker import running_workers
from tests.agent_workflows import ManyCallsInput, ManyLargeCallsWorkflow

CALLS = int(os.environ.get("BENCH_LARGE_CALLS", 200))
CONTEXT_BYTES = 100 * 1024


async def history_bytes(client: Client, settings: BatonSettings) -> int:
    reader = AgentSpec(name="Reader", instructions="You are a reader.", pii="off", cache="never")
    queue = f"{settings.workflows_queue}-large"
    async with (
        running_workers(client, settings, [settings.llm_queue]),
        Worker(client, task_queue=queue, workflows=[ManyLargeCallsWorkflow]),
    ):
        handle = await client.start_workflow(
            ManyLargeCallsWorkflow.run,
            ManyCallsInput(
                agent=reader, calls=CALLS, context_bytes=CONTEXT_BYTES, llm_queue=settings.llm_queue
            ),
            id=f"bench-large-{uuid.uuid4()}",
            task_queue=queue,
        )
        assert await handle.result() == CALLS
        return History(events=(await handle.fetch_history()).events).ByteSize()


async def main() -> None:
    env = await start_dev_server()
    settings = BatonSettings(
        data_dir=Path(tempfile.mkdtemp(prefix="baton-bench-")),
        workflows_queue="bench-wf",
        llm_queue="bench-llm",
    )
    engine = engine_from_settings(settings)
    try:
        offloaded = await history_bytes(
            with_converter(env.client, settings_converter(settings, engine)), settings
        )
        inline = await history_bytes(
            env.client, settings.model_copy(update={"llm_queue": "bench-llm-inline"})
        )
    finally:
        await engine.dispose()
        await env.shutdown()
    print(f"{CALLS} LLM calls with {CONTEXT_BYTES // 1024} KB contexts each:")
    print(
        f"  Baton (out of band): history {offloaded / 1e6:.2f} MB, {offloaded / CALLS / 1024:.2f} KB per call"
    )
    print(f"  inline:              history {inline / 1e6:.2f} MB, {inline / CALLS / 1024:.2f} KB per call")
    print(
        f"large_contexts calls={CALLS} history_mb={offloaded / 1e6:.2f} "
        f"inline_history_mb={inline / 1e6:.2f} ratio={offloaded / inline:.3f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
    sys.stdout.flush()
    os._exit(0)

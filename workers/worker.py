"""Workers: which workflows and activities each Baton task queue serves."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.steps import StepActivities
from baton.settings import BatonSettings
from workflows.process import ProcessWorkflow


def build_workers(
    client: Client,
    settings: BatonSettings,
    queues: Sequence[str],
    *,
    allowed_modules: Sequence[str] | None = None,
) -> list[Worker]:
    """One worker per queue.

    The workflows queue runs `ProcessWorkflow`, and step activities too, because a step marked
    `local` runs as a local activity in the workflow worker. Any other queue (the steps queue,
    or a step's own `task_queue`) runs step activities. The LLM and compliance queues get their
    workers from the issues that add their activities; until then they are skipped.
    """
    steps = StepActivities(allowed_modules if allowed_modules is not None else settings.step_modules)
    reserved = {settings.llm_queue, settings.compliance_queue}
    workers = []
    for queue in dict.fromkeys(queues):
        if queue in reserved:
            continue
        kwargs: dict[str, Any] = {"activities": [steps.run_step]}
        if queue == settings.workflows_queue:
            kwargs["workflows"] = [ProcessWorkflow]
        workers.append(Worker(client, task_queue=queue, **kwargs))
    if not workers:
        raise ValueError(f"none of the queues {list(queues)} has anything to serve yet")
    return workers


@contextlib.asynccontextmanager
async def running_workers(
    client: Client,
    settings: BatonSettings,
    queues: Sequence[str] | None = None,
    *,
    allowed_modules: Sequence[str] | None = None,
) -> AsyncIterator[list[Worker]]:
    """Run workers for `queues` (all of Baton's by default) until the block exits."""
    workers = build_workers(client, settings, queues or settings.all_queues, allowed_modules=allowed_modules)
    async with contextlib.AsyncExitStack() as stack:
        for worker in workers:
            await stack.enter_async_context(worker)
        yield workers

"""Orchestrations (the seed's OrchestrateAgents): start any of the five patterns over agents named
in the registry, follow the transcript (as JSON, or live as Server-Sent Events), answer the
person prompt, cancel. Every agent a request names, the manager and aggregator included, must be
one the caller may use (403 naming those it may not)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError

from baton.api.deps import AgentAccess, IdempotencyKey, Reader, RunId, baton_for, check_agents, check_steering
from baton.api.problems import documented
from baton.errors import Conflict, NotFound
from baton.orchestration.models import (
    ManagerSpec,
    OrchestrationResult,
)
from baton.security.jwt import Identity
from baton.starter.api_models import (
    ConcurrentStart,
    GroupChatStart,
    HandoffStart,
    MagenticStart,
    Orchestration,
    OrchestrationStart,
    Reply,
    RunInfo,
    SequentialStart,
)
from baton.starter.client import ORCHESTRATION_WORKFLOWS, BatonClient, OrchestrationRun, PendingOrchestration

router = APIRouter(prefix="/v1/orchestrations", tags=["orchestrations"], responses=documented(401, 403, 429))
WORKFLOW_TYPES = {workflow_type for _, workflow_type in ORCHESTRATION_WORKFLOWS.values()}
STREAM_POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0


def _pending(baton: BatonClient, start: OrchestrationStart) -> PendingOrchestration:
    match start:
        case SequentialStart():
            return baton.run_sequential(start.task, start.agents, pass_transcript=start.pass_transcript)
        case ConcurrentStart():
            return baton.run_concurrent(
                start.task, start.agents, aggregator=start.aggregator, on_failure=start.on_failure
            )
        case GroupChatStart():
            manager = ManagerSpec(
                kind=start.manager,
                agent=baton.agents[start.manager_agent] if start.manager == "llm" else None,
                name=start.manager_name,
                ask_human_every=start.ask_human_every,
            )
            return baton.run_group_chat(
                start.task,
                start.agents,
                manager=manager,
                max_rounds=start.max_rounds,
                approval_phrase=start.approval_phrase,
                human=start.human,
            )
        case HandoffStart():
            return baton.run_handoff(
                start.task,
                start.agents,
                routes=start.routes,
                max_handoffs=start.max_handoffs,
                human=start.human,
            )
        case MagenticStart():
            return baton.run_magentic(
                start.task, start.agents, manager=start.manager, max_rounds=start.max_rounds
            )
    raise AssertionError(f"unknown pattern {start.pattern}")


@router.post("", status_code=201, responses=documented(404))
async def start_orchestration(
    request: Request, start: OrchestrationStart, who: AgentAccess, idempotent: IdempotencyKey
) -> RunInfo:
    """Start an orchestration of agents by name. With an `Idempotency-Key` header, a repeated
    request gets the run the first one started."""
    baton = baton_for(request, who)
    pending = _pending(baton, start)
    check_agents(who, pending.input.all_agents(), baton.agents)
    run = await pending.start(
        key=idempotent, if_exists="return", data_subject=start.data_subject, processing=start.processing
    )
    return RunInfo(run_id=run.id, ui_url=run.ui_url)


async def _run(
    baton: BatonClient, run_id: str, steered_by: Identity | None = None
) -> tuple[OrchestrationRun, WorkflowExecutionStatus | None]:
    """The orchestration run and its status; 404 for a run that is not an orchestration.
    `steered_by`: the caller who would change it, refused (403) the run's agents it may not use."""
    described = await baton.describe_run(run_id)
    if described.workflow_type not in WORKFLOW_TYPES:
        raise NotFound(f"{run_id} is not an orchestration run")
    if steered_by is not None:
        await check_steering(baton, steered_by, described)
    run = OrchestrationRun(baton.temporal.get_workflow_handle(run_id, result_type=OrchestrationResult), baton)
    return run, described.status


@router.get("/{run_id}", responses=documented(404))
async def orchestration(request: Request, run_id: RunId, who: Reader) -> Orchestration:
    """Status, round, the transcript so far, the question a person is asked, and the result once
    it has completed."""
    run, status = await _run(baton_for(request, who), run_id)
    progress = await run.progress()
    result = await run.result() if status == WorkflowExecutionStatus.COMPLETED else None
    return Orchestration(run_id=run_id, progress=progress, result=result)


@router.get(
    "/{run_id}/stream",
    responses={
        **documented(404),
        200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"},
    },
)
async def stream(request: Request, run_id: RunId, who: Reader) -> StreamingResponse:
    """The transcript as it grows, as Server-Sent Events a browser's `EventSource` follows:
    `turn` for each turn (JSON), `waiting` when a person is asked (the question), `end` once the
    run has ended (its status), and a `: keepalive` comment after 15 s without news."""
    run, _ = await _run(baton_for(request, who), run_id)
    return StreamingResponse(_events(request, run), media_type="text/event-stream")


async def _events(request: Request, run: OrchestrationRun) -> AsyncIterator[str]:
    sent, asked = 0, None
    quiet_since = asyncio.get_running_loop().time()
    while not await request.is_disconnected():
        progress = await run.progress()
        for turn in progress.transcript[sent:]:
            yield _event("turn", turn.model_dump_json())
        if len(progress.transcript) > sent:
            quiet_since = asyncio.get_running_loop().time()
        elif asyncio.get_running_loop().time() - quiet_since > KEEPALIVE_SECONDS:
            yield ": keepalive\n\n"  # a comment: proxies and clients see the stream is alive
            quiet_since = asyncio.get_running_loop().time()
        sent = len(progress.transcript)
        if progress.waiting_for != asked and progress.waiting_for is not None:
            yield _event("waiting", json.dumps({"question": progress.waiting_for}))
        asked = progress.waiting_for
        if progress.status in ("completed", "failed", "cancelled"):
            yield _event("end", json.dumps({"status": progress.status}))
            return
        await asyncio.sleep(STREAM_POLL_SECONDS)


def _event(name: str, data: str) -> str:
    return f"event: {name}\ndata: {data}\n\n"


@router.post("/{run_id}/reply", status_code=204, responses=documented(404, 409))
async def reply(request: Request, run_id: RunId, answer: Reply, who: AgentAccess) -> None:
    """Answer the question the run is waiting on; 409 when it is not waiting."""
    run, _ = await _run(baton_for(request, who), run_id, steered_by=who)
    try:
        await run.reply(answer.text, answer.author)
    except WorkflowUpdateFailedError as e:
        raise Conflict(str(e.cause or e)) from None


@router.post("/{run_id}/cancel", status_code=202, responses=documented(404))
async def cancel(request: Request, run_id: RunId, who: AgentAccess) -> RunInfo:
    """Ask the run to stop."""
    run, _ = await _run(baton_for(request, who), run_id, steered_by=who)
    await run.cancel()
    return RunInfo(run_id=run.id, ui_url=run.ui_url)

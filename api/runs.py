"""Process runs: start one from a deployed template, read its state, send it events, cancel it."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from temporalio.service import RPCError, RPCStatusCode

from baton.api.deps import (
    PROCESS_NAME,
    AgentAccess,
    IdempotencyKey,
    Reader,
    RunId,
    baton_for,
    check_agents,
    check_steering,
)
from baton.api.problems import documented
from baton.errors import InvalidRequest, NotFound
from baton.process import EventAccepted, ProcessState
from baton.process.runtime import BATON_PROCESS, BATON_TENANT
from baton.security.jwt import Identity
from baton.starter.api_models import (
    EventRequest,
    ListedRun,
    RunInfo,
    RunPage,
    RunRequest,
    RunStarted,
    RunStatus,
)
from baton.starter.client import BatonClient, ProcessRun
from baton.workflows.process import PROCESS_WORKFLOW

router = APIRouter(prefix="/v1/runs", tags=["runs"], responses=documented(401, 403, 429))


STATUSES = {
    "running": "Running",
    "completed": "Completed",
    "failed": "Failed",
    "canceled": "Canceled",
    "terminated": "Terminated",
    "timed_out": "TimedOut",
}


@router.get("")
async def list_runs(
    request: Request,
    who: Reader,
    process: Annotated[
        str | None, Query(pattern=PROCESS_NAME, description="Only this process's runs.")
    ] = None,
    status: RunStatus | None = None,
    page_size: Annotated[int, Query(ge=1, le=500)] = 50,
    page_token: Annotated[str | None, Query(max_length=4096)] = None,
) -> RunPage:
    """Process runs, newest first, from Temporal's visibility store, a page at a time."""
    clauses = [f"WorkflowType = '{PROCESS_WORKFLOW}'"]
    if process is not None:
        clauses.append(f"{BATON_PROCESS.name} = '{process}'")  # the pattern admits no quote
    if status is not None:
        clauses.append(f"ExecutionStatus = '{STATUSES[status]}'")
    try:
        token = base64.urlsafe_b64decode(page_token) if page_token else None
    except ValueError:
        raise InvalidRequest("page_token is not one this API gave") from None
    baton = baton_for(request, who)
    if baton.tenant is not None:
        clauses.append(f"{BATON_TENANT.name} = '{baton.tenant}'")  # the claim was checked: no quote
    page = baton.temporal.list_workflows(" AND ".join(clauses), page_size=page_size, next_page_token=token)
    try:
        await page.fetch_next_page()
    except RPCError as e:
        if e.status != RPCStatusCode.INVALID_ARGUMENT:
            raise
        raise InvalidRequest("page_token is not one this API gave") from None
    return RunPage(
        runs=[
            ListedRun(
                run_id=execution.id,
                process=execution.typed_search_attributes.get(BATON_PROCESS),
                status=execution.status.name.lower() if execution.status else "unknown",
                started_at=execution.start_time,
                closed_at=execution.close_time,
            )
            for execution in page.current_page or []
        ],
        next_page_token=base64.urlsafe_b64encode(page.next_page_token).decode()
        if page.next_page_token
        else None,
    )


@router.post("", status_code=201, responses=documented(404, 409))
async def start_run(
    request: Request,
    response: Response,
    run: RunRequest,
    who: AgentAccess,
    idempotent: IdempotencyKey,
    wait: Annotated[bool, Query(description="Answer once the run has ended, with its result.")] = False,
) -> RunStarted:
    """Start a run of a deployed template with its input event (201), or start it and answer
    with its result once it has ended (`wait`, 200). With a run key (or an `Idempotency-Key`
    header), a repeated start returns the run the first one started."""
    baton = baton_for(request, who)
    process = await baton.definitions.load_process(run.template, baton.settings, run.version, baton.agents)
    check_agents(who, process.compiled.agents(), baton.agents)
    key = run.key or idempotent
    started = await baton.start_process(
        process,
        run.event,
        run.data,
        key=key,
        if_exists="return" if key else "fail",
        data_subject=run.data_subject,
        processing=run.processing,
    )
    answer = RunStarted(run_id=started.id, ui_url=started.ui_url)
    if wait:
        answer.result = await started.result()
        response.status_code = 200
    return answer


@router.get("/{run_id}", responses=documented(404))
async def run_state(request: Request, run_id: RunId, who: Reader) -> ProcessState:
    """What the run is doing and what it holds."""
    return await (await _process_run(baton_for(request, who), run_id)).state()


@router.post("/{run_id}/events", responses=documented(404, 400, 409))
async def send_event(request: Request, run_id: RunId, event: EventRequest, who: AgentAccess) -> EventAccepted:
    """Send an input event: one the process does not declare is refused (400, naming those it
    does), and so is data that does not fit; a finished run takes none (409)."""
    run = await _process_run(baton_for(request, who), run_id, steered_by=who)
    return await run.send_event(event.name, event.data)


@router.post("/{run_id}/cancel", status_code=202, responses=documented(404))
async def cancel_run(request: Request, run_id: RunId, who: AgentAccess) -> RunInfo:
    """Ask the run to stop; its running steps hear of it."""
    run = await _process_run(baton_for(request, who), run_id, steered_by=who)
    await run.cancel()
    return RunInfo(run_id=run.id, ui_url=run.ui_url)


async def _process_run(baton: BatonClient, run_id: str, steered_by: Identity | None = None) -> ProcessRun:
    """The process run; 404 for any other workflow (an agent run, the audit witness, a
    subject's retention), which these routes and their policy are not for. `steered_by`: the
    caller who would change it, refused (403) the run's agents it may not use."""
    described = await baton.describe_run(run_id)
    if described.workflow_type != PROCESS_WORKFLOW:
        raise NotFound(f"{run_id} is not a process run")
    if steered_by is not None:
        await check_steering(baton, steered_by, described)
    return baton.get_run(run_id)

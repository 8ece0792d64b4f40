"""Process runs: start one from a deployed template, read its state, send it events, cancel it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from baton.api.deps import AgentAccess, Reader, agents_of, baton_for, check_agents
from baton.api.problems import documented
from baton.compliance import Processing
from baton.process import EventAccepted, ProcessState

router = APIRouter(prefix="/v1/runs", tags=["runs"], responses=documented(401, 403))


class RunInfo(BaseModel):
    """A run that was started: where to follow it."""

    run_id: str
    ui_url: str = Field(description="The run in the Temporal UI.")


class RunRequest(BaseModel):
    template: str = Field(min_length=1, max_length=100, description="A deployed process template.")
    version: int | None = Field(None, ge=1, description="Default: the latest.")
    event: str = Field(min_length=1, max_length=200, description="The input event that starts it.")
    data: Any = None
    key: str | None = Field(
        None, description="Run key: the workflow ID is `process-<name>-<key>`; no personal data."
    )
    data_subject: str | None = Field(
        None, min_length=1, max_length=200, description="Whose personal data the run holds (erasable)."
    )
    processing: Processing | None = Field(None, description="Why; default: the template's own.")


class EventRequest(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    data: Any = None


@router.post("", status_code=201, responses=documented(404, 409))
async def start_run(request: Request, run: RunRequest, who: AgentAccess) -> RunInfo:
    """Start a run of a deployed template with its input event; 409 while a run with the same
    key is running."""
    baton = baton_for(request, who)
    process = await baton.definitions.load_process(run.template, baton.settings, run.version)
    check_agents(who, agents_of(process.compiled))
    started = await baton.start_process(
        process, run.event, run.data, key=run.key, data_subject=run.data_subject, processing=run.processing
    )
    return RunInfo(run_id=started.id, ui_url=started.ui_url)


@router.get("/{run_id}", responses=documented(404))
async def run_state(request: Request, run_id: str, who: Reader) -> ProcessState:
    """What the run is doing and what it holds."""
    return await request.app.state.baton.get_run(run_id).state()


@router.post("/{run_id}/events", responses=documented(404, 400, 409))
async def send_event(request: Request, run_id: str, event: EventRequest, who: AgentAccess) -> EventAccepted:
    """Send an input event: one the process does not declare is refused (400, naming those it
    does), and so is data that does not fit; a finished run takes none (409)."""
    return await baton_for(request, who).get_run(run_id).send_event(event.name, event.data)


@router.post("/{run_id}/cancel", status_code=202, responses=documented(404))
async def cancel_run(request: Request, run_id: str, who: AgentAccess) -> RunInfo:
    """Ask the run to stop; its running steps hear of it."""
    run = baton_for(request, who).get_run(run_id)
    await run.cancel()
    return RunInfo(run_id=run.id, ui_url=run.ui_url)

"""Agents: those the caller may use, one agent's specification, and a run of one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from baton.agents import AgentSpec
from baton.api.deps import AgentAccess, AgentName, IdempotencyKey, baton_for, check_agents
from baton.api.problems import documented
from baton.security.policies import may_use
from baton.starter.api_models import AgentRunRequest, AgentRunStarted, AgentSummary
from baton.starter.client import BatonClient

router = APIRouter(prefix="/v1/agents", tags=["agents"], responses=documented(401, 403, 429))


@router.get("")
async def list_agents(request: Request, who: AgentAccess) -> list[AgentSummary]:
    """The agents the caller may use."""
    registry = request.app.state.baton.agents
    return [
        AgentSummary(name=a.name, description=a.description, model=a.model, tools=a.tools, roles=a.roles)
        for a in (registry[name] for name in sorted(registry))
        if may_use(who.roles, a, registry)
    ]


@router.get("/{name}", responses=documented(404))
async def show_agent(request: Request, name: AgentName, who: AgentAccess) -> AgentSpec:
    """One agent's specification."""
    baton: BatonClient = request.app.state.baton
    agent = baton.agents[name]
    check_agents(who, [agent], baton.agents)
    return agent


@router.post("/{name}/runs", status_code=202, responses={**documented(404), 200: {"model": AgentRunStarted}})
async def run_agent(
    request: Request,
    response: Response,
    name: AgentName,
    run: AgentRunRequest,
    who: AgentAccess,
    idempotent: IdempotencyKey,
    wait: Annotated[bool, Query(description="Answer once the agent has answered.")] = False,
) -> AgentRunStarted:
    """Start the agent on `input`: 202 with the run, or 200 with its answer when `wait`. With an
    `Idempotency-Key` header, a repeated request gets the run the first one started."""
    baton = baton_for(request, who)
    agent = baton.agents[name]
    check_agents(who, [agent], baton.agents)
    handle = await baton.start_agent(
        agent,
        run.input,
        key=idempotent,
        if_exists="return",
        data_subject=run.data_subject,
        processing=run.processing,
    )
    started = AgentRunStarted(
        run_id=handle.id, ui_url=baton.settings.workflow_url(handle.id, baton.temporal.namespace)
    )
    if wait:
        started.result = await handle.result()
        response.status_code = 200
    return started

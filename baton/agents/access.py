"""Workflow side of per-agent authorization: before a run uses agents, its grant is checked.

A run's principal (`baton.security.grants.RunGrant`, in the run's memo) must be allowed to use
every agent the run names: an agent that names roles needs one of them, or Admin. The check is a
local activity (`activities.access`), because it needs the worker's keys and agent files, which
workflow code may not read; its answer is recorded in the run's history, so a replay does not ask
again. The roles that count are those of the worker's own agent files where an agent is defined
there, not the ones a request carries.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy

from ..security.grants import GRANT_MEMO, RunGrant
from .spec import AgentSpec

CHECK_AGENT_ACCESS_ACTIVITY = "baton.check_agent_access"
AGENTS_AUTHORIZED = "agents-authorized"
"""Patch: runs whose history began before the check replay without it."""


class AgentRoles(BaseModel):
    name: str
    roles: list[str] = Field(default_factory=list)


class AgentAccessCheck(BaseModel):
    """May the run's principal use these agents? The `baton.check_agent_access` input."""

    workflow_id: str
    grant: RunGrant | None
    agents: list[AgentRoles]


def run_grant() -> RunGrant | None:
    """The current run's grant, if it carries one that parses (workflow code)."""
    try:
        return workflow.memo_value(GRANT_MEMO, None, type_hint=RunGrant)
    except Exception:  # a memo that is not a grant proves nothing, like none at all
        return None


async def authorize_agents(agents: Iterable[AgentSpec]) -> None:
    """Fail the run (`AgentAccessDenied`, not retried) unless its principal may use every agent
    of `agents` (workflow code)."""
    named = {agent.name: agent.roles for agent in agents}
    if not named or not workflow.patched(AGENTS_AUTHORIZED):
        return
    await workflow.execute_local_activity(
        CHECK_AGENT_ACCESS_ACTIVITY,
        AgentAccessCheck(
            workflow_id=workflow.info().workflow_id,
            grant=run_grant(),
            agents=[AgentRoles(name=name, roles=roles) for name, roles in named.items()],
        ),
        start_to_close_timeout=timedelta(seconds=10),
        retry_policy=RetryPolicy(maximum_attempts=3, non_retryable_error_types=["AgentAccessDenied"]),
        summary="check the run's principal may use its agents",
    )

"""Workflow side of per-agent authorization: before a run uses agents, its grant is checked.

A run's principal (`baton.security.grants.RunGrant`, in the run's memo) must be allowed to use
every agent the run names (`baton.security.policies.needed_roles`: the roles of the worker's own
agent files, not the ones a request carries, and those of gated agents whose tools a spec
brings). The check is a local activity (`activities.access`), because it needs the worker's keys
and agent files, which workflow code may not read; its answer is recorded in the run's history,
so a replay does not ask again. It runs once, when a run is started by a client: sub-processes
and continued runs are started by the checked run's own code, which no client can do.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy

from ..security.grants import GRANT_MEMO, RunGrant
from .spec import AgentSpec

CHECK_AGENT_ACCESS_ACTIVITY = "baton.check_agent_access"
AGENTS_AUTHORIZED = "agents-authorized"
"""Patch: runs whose history began before the check replay without it."""


class AgentUse(BaseModel):
    """An agent as the check reads it (not its instructions: the run's history keeps this)."""

    name: str
    roles: list[str]
    tools: list[str]


class AgentAccessCheck(BaseModel):
    """May the run's principal use these agents? The `baton.check_agent_access` input."""

    workflow_id: str
    started_at: datetime
    grant: RunGrant | None
    agents: list[AgentUse]


def run_grant() -> RunGrant | None:
    """The current run's grant, if it carries one that parses (workflow code)."""
    try:
        return workflow.memo_value(GRANT_MEMO, None, type_hint=RunGrant)
    except Exception:  # a memo that is not a grant proves nothing, like none at all
        return None


async def authorize_agents(agents: Iterable[AgentSpec]) -> None:
    """Fail the run (`AgentAccessDenied`, not retried) unless its principal may use every agent
    of `agents` (workflow code)."""
    named = {agent.name: agent for agent in agents}
    info = workflow.info()
    if not named or info.parent is not None or info.continued_run_id is not None:
        return
    if not workflow.patched(AGENTS_AUTHORIZED):
        return
    await workflow.execute_local_activity(
        CHECK_AGENT_ACCESS_ACTIVITY,
        AgentAccessCheck(
            workflow_id=info.workflow_id,
            started_at=info.start_time,
            grant=run_grant(),
            agents=[AgentUse(name=a.name, roles=a.roles, tools=a.tools) for a in named.values()],
        ),
        start_to_close_timeout=timedelta(seconds=10),
        retry_policy=RetryPolicy(maximum_attempts=3, non_retryable_error_types=["AgentAccessDenied"]),
        summary="check the run's principal may use its agents",
    )

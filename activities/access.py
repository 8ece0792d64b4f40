"""The `baton.check_agent_access` activity: the worker's own check of a run's principal against
the agents the run uses (`baton.agents.access`), with the worker's keys and agent files."""

from __future__ import annotations

from collections.abc import Mapping

from temporalio import activity
from temporalio.exceptions import ApplicationError

from baton.agents.access import CHECK_AGENT_ACCESS_ACTIVITY, AgentAccessCheck
from baton.agents.spec import AgentSpec
from baton.errors import AgentAccessDenied
from baton.security.grants import InvalidGrant
from baton.security.keys import LiveKeyring
from baton.security.policies import needed_roles, refused_agents


class AccessActivities:
    def __init__(self, keys: LiveKeyring | None, agents: Mapping[str, AgentSpec]) -> None:
        self._keys = keys
        self._agents = agents

    @activity.defn(name=CHECK_AGENT_ACCESS_ACTIVITY)
    async def check_agent_access(self, check: AgentAccessCheck) -> None:
        """Refuse (`AgentAccessDenied`, not retried) the agents the run's principal may not use:
        all of those that need a role when its grant is missing or proves nothing."""
        gated = [agent for agent in check.agents if needed_roles(agent, self._agents)]
        if not gated:
            return
        grant, roles = check.grant, list[str]()
        if grant is not None and self._keys is not None:
            try:
                grant.check_start(
                    self._keys, check.workflow_id, check.started_at, [a.name for a in check.agents]
                )
                roles = grant.roles
            except InvalidGrant as e:
                activity.logger.warning("run %s: %s", check.workflow_id, e)
                grant = None
        if refused := refused_agents(roles, gated, self._agents):
            denied = AgentAccessDenied(refused, grant.principal if grant else None)
            raise ApplicationError(str(denied), refused, type="AgentAccessDenied", non_retryable=True)

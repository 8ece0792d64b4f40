"""Who may do what through the HTTP API: roles, the policies that group them, and agents' own roles.

The seed defines two policies, AgentAccess (roles Agent or Admin) and TemplateManagement (roles
TemplateManager or Admin); Baton adds Compliance (DataProtectionOfficer), Audit (Auditor) and a
read-only Read policy. Every route names one policy; this table is the only place that says
which roles satisfy it (README's roles table is generated from it by the tests).

An agent may further name the roles allowed to use it (`AgentSpec.roles`): a caller needs one of
them, or Admin, for every agent a request names, wherever it names it.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from baton.agents import AgentSpec

from .jwt import Identity


class Role(StrEnum):
    ADMIN = "Admin"
    AGENT = "Agent"
    TEMPLATE_MANAGER = "TemplateManager"
    DATA_PROTECTION_OFFICER = "DataProtectionOfficer"
    AUDITOR = "Auditor"
    VIEWER = "Viewer"


class Policy(StrEnum):
    AGENT_ACCESS = "AgentAccess"
    """Use agents: run them, orchestrate them, start and steer process runs."""
    TEMPLATE_MANAGEMENT = "TemplateManagement"
    """Create and retire process template versions."""
    COMPLIANCE = "Compliance"
    """Processing records, data-subject requests, legal holds."""
    AUDIT = "Audit"
    """Read and verify the audit trail."""
    READ = "Read"
    """Read process templates and runs' state."""


POLICIES: dict[Policy, frozenset[Role]] = {
    Policy.AGENT_ACCESS: frozenset({Role.AGENT, Role.ADMIN}),
    Policy.TEMPLATE_MANAGEMENT: frozenset({Role.TEMPLATE_MANAGER, Role.ADMIN}),
    Policy.COMPLIANCE: frozenset({Role.DATA_PROTECTION_OFFICER, Role.ADMIN}),
    Policy.AUDIT: frozenset({Role.AUDITOR, Role.ADMIN}),
    Policy.READ: frozenset({Role.VIEWER, Role.AGENT, Role.TEMPLATE_MANAGER, Role.ADMIN}),
}


def satisfies(who: Identity, policy: Policy) -> bool:
    return who.has_any_role(POLICIES[policy])


def may_use(who: Identity, agent: AgentSpec) -> bool:
    """Whether `who` may use `agent`: any caller when it names no roles, else one of its roles
    or Admin."""
    return roles_admit(who.roles, agent.roles)


def roles_admit(held: Iterable[str], required: Iterable[str]) -> bool:
    """Whether a principal holding `held` may use an agent that names `required`."""
    required = set(required)
    return not required or not required.union([Role.ADMIN]).isdisjoint(held)


def refused_agents(who: Identity, agents: Iterable[AgentSpec]) -> list[str]:
    """The names of the agents `who` may not use, in order, each once."""
    return list(dict.fromkeys(agent.name for agent in agents if not may_use(who, agent)))

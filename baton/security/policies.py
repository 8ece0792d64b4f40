"""Who may do what through the HTTP API: roles, the policies that group them, and agents' own roles.

The seed defines two policies, AgentAccess (roles Agent or Admin) and TemplateManagement (roles
TemplateManager or Admin); Baton adds Compliance (DataProtectionOfficer), Audit (Auditor) and a
read-only Read policy. Every route names one policy; this table is the only place that says
which roles satisfy it (README's roles table is generated from it by the tests).

An agent may further name the roles allowed to use it (`AgentSpec.roles`): a caller needs one of
them, or Admin, for every agent a request names, wherever it names it (`needed_roles` says what
counts: the registered agent file's roles, and those of the gated agents whose tools it brings).
The HTTP API checks it per request, the workers again per run (`activities.access`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Protocol

from baton.agents import AgentSpec

from .jwt import Identity


class AgentLike(Protocol):
    """What the checks read of an agent: an `AgentSpec`, or its summary in a run's check."""

    @property
    def name(self) -> str: ...
    @property
    def roles(self) -> list[str]: ...
    @property
    def tools(self) -> list[str]: ...


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


def may_use(held: Iterable[str], agent: AgentLike, registry: Mapping[str, AgentSpec]) -> bool:
    """Whether a principal holding the roles `held` may use `agent`: for each set of roles the
    agent needs (`needed_roles`), one of them, or Admin."""
    held = set(held)
    return Role.ADMIN in held or all(not roles.isdisjoint(held) for roles in needed_roles(agent, registry))


def needed_roles(agent: AgentLike, registry: Mapping[str, AgentSpec]) -> list[set[str]]:
    """What using `agent` takes: one role of each set. The roles of the agent file of its name in
    `registry` where there is one (a request cannot lower them), else its own; and, for each
    tool it brings that only agents with roles are given in `registry`, one of those agents'
    roles (a spec under another name cannot borrow a gated agent's tools)."""
    registered = registry.get(agent.name)
    own = registered.roles if registered is not None else agent.roles
    needs = [set(own)] if own else []
    given = set(registered.tools) if registered is not None else set()
    for tool in dict.fromkeys(agent.tools):
        if tool in given:
            continue
        holders = [other for other in registry.values() if tool in other.tools]
        if holders and all(other.roles for other in holders):
            needs.append({role for other in holders for role in other.roles})
    return needs


def refused_agents(
    held: Iterable[str], agents: Iterable[AgentLike], registry: Mapping[str, AgentSpec]
) -> list[str]:
    """The names of the agents of `agents` a principal holding `held` may not use, in order,
    each once."""
    held = set(held)
    return list(dict.fromkeys(agent.name for agent in agents if not may_use(held, agent, registry)))

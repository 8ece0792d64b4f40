"""What every API route depends on: the caller (a verified bearer token), the policy the route
needs, the client acting for the caller, and the check that the caller may use each agent."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Path, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from temporalio.client import WorkflowExecutionDescription

from baton.agents import AgentSpec
from baton.agents.access import AgentUse
from baton.api.limits import RateLimiter
from baton.errors import AccessDenied, AgentAccessDenied, BatonError
from baton.security.grants import TENANT_PATTERN
from baton.security.jwt import Identity, JwtVerifier, TokenError
from baton.security.policies import Policy, Role, refused_agents, satisfies
from baton.starter.api_models import MAX_VERSION
from baton.starter.client import BatonClient, grant_of

SUBJECT_CHARS = 200
"""The longest token subject the audit trail records."""
RunId = Annotated[str, Path(min_length=1, max_length=1000, description="The run's workflow ID.")]
PROCESS_NAME = r"^[A-Za-z_][A-Za-z0-9_\-]{0,99}$"
"""A process's name, as `ProcessDefinition.name` admits it (no quote: safe in a visibility query)."""
TemplateName = Annotated[str, Path(pattern=PROCESS_NAME)]
AgentName = Annotated[str, Path(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")]
Version = Annotated[int, Path(ge=1, le=MAX_VERSION)]


BEARER = HTTPBearer(
    auto_error=False,
    description="An access token of the OIDC issuer; with the dev issuer, `baton token --sub you --roles Agent`.",
)
"""Declares bearer tokens in the OpenAPI document, so Swagger UI's Authorize takes one."""


async def identity(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]
) -> Identity:
    """The caller, from a valid bearer token (401 otherwise). Calls that prove no one count
    against their IP address's budget instead, so a flood of bad tokens is refused (429) too."""
    limiter: RateLimiter = request.app.state.limiter
    token = credentials.credentials if credentials is not None else None
    try:
        if not token:
            raise TokenError("a bearer token is required")
        verifier: JwtVerifier = request.app.state.verifier
        who = await verifier.verify(token)
        if len(who.subject) > SUBJECT_CHARS:  # it could not be audited
            raise TokenError(f"the token's subject is longer than {SUBJECT_CHARS} characters")
    except TokenError as e:
        await _within_budget(limiter, f"ip:{request.client.host if request.client else 'unknown'}")
        error = 'Bearer error="invalid_token"' if token else "Bearer"
        raise HTTPException(401, str(e), {"WWW-Authenticate": error}) from None
    request.state.principal = who.subject
    await _within_budget(limiter, f"sub:{who.subject}")
    claim = request.app.state.baton.settings.api_tenant_claim
    if claim is not None:
        tenant = who.claims.get(claim)
        if not isinstance(tenant, str) or not re.fullmatch(TENANT_PATTERN, tenant):
            raise HTTPException(
                403, f"the token names no tenant: its {claim!r} claim is missing or not a tenant's name"
            )
        request.state.tenant = tenant
    return who


async def _within_budget(limiter: RateLimiter, key: str) -> None:
    """429 with Retry-After once `key` (a principal, or an address) has used its calls this minute."""
    if (wait := await limiter.retry_after(key)) is not None:
        raise HTTPException(
            429,
            f"more than {limiter.per_minute} calls a minute; try again in {wait} s",
            {"Retry-After": str(wait)},
        )


class Allowed:
    """A dependency: the caller, when a role of theirs satisfies the route's policy (403 otherwise)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    async def __call__(self, who: Annotated[Identity, Depends(identity)]) -> Identity:
        if not satisfies(who, self.policy):
            raise HTTPException(
                403, f"this needs the {self.policy.value} policy, which the caller's roles do not satisfy"
            )
        return who


AgentAccess = Annotated[Identity, Depends(Allowed(Policy.AGENT_ACCESS))]
TemplateManagement = Annotated[Identity, Depends(Allowed(Policy.TEMPLATE_MANAGEMENT))]
Reader = Annotated[Identity, Depends(Allowed(Policy.READ))]


def idempotency_key(
    who: Annotated[Identity, Depends(identity)],
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=200,
            description="Repeat the request with the same key to get the same run, never a second one.",
        ),
    ] = None,
) -> str | None:
    """The run key an `Idempotency-Key` header stands for: per caller (two callers' keys never
    meet), and a hash (the header's text never reaches a workflow ID)."""
    if idempotency_key is None:
        return None
    return hashlib.sha256(f"{who.subject}\0{idempotency_key}".encode()).hexdigest()[:32]


IdempotencyKey = Annotated[str | None, Depends(idempotency_key)]


def policy_of(route: APIRoute) -> Policy | None:
    """The policy a route needs; None for the open ones (health)."""
    for dependency in route.dependant.dependencies:
        if isinstance(dependency.call, Allowed):
            return dependency.call.policy
    return None


def baton_for(request: Request, who: Identity) -> BatonClient:
    """The client, acting for the caller: the audit trail names them, the runs it starts carry
    their roles (workers check them against each agent's) and tenant, and it sees only that
    tenant's runs."""
    client: BatonClient = request.app.state.baton
    return client.acting_for(who.subject, who.roles, getattr(request.state, "tenant", None))


async def check_steering(baton: BatonClient, who: Identity, run: WorkflowExecutionDescription) -> None:
    """403 naming the agents of `run` the caller may not use: who sends a run events, answers it
    or cancels it steers its agents, and must be allowed them as its starter was. A run whose
    grant cannot be read or was not signed with Baton's keys is refused to all but Admin."""
    try:
        grant = await grant_of(run)
        if grant is not None and (keys := baton.keys) is not None:
            grant.verify(keys)
    except (BatonError, ValueError):
        if Role.ADMIN in who.roles:
            return
        raise AccessDenied(
            f"the grant of run {run.id} cannot be verified: only an Admin may steer it"
        ) from None
    if grant is None:  # started before runs carried grants, or without Baton's keys (open agents only)
        return
    used = [AgentUse(name=name, roles=roles, tools=[]) for name, roles in grant.agents.items()]
    if refused := refused_agents(who.roles, used, baton.agents):
        raise AgentAccessDenied(refused, who.subject)


def check_agents(who: Identity, agents: list[AgentSpec], registry: Mapping[str, AgentSpec]) -> None:
    """403 naming the agents of `agents` the caller may not use, if any."""
    if refused := refused_agents(who.roles, agents, registry):
        raise AgentAccessDenied(refused, who.subject)

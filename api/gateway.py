"""The HTTP API: what `BatonClient` does, for services and browsers behind an identity provider.

`baton api` serves it (uvicorn). Every route under `/v1` needs a bearer access token, checked as
the codec server checks it (`baton.security.jwt`: RS256/ES256, issuer, audience, expiry; the dev
issuer by default, `baton token --sub alice --roles Agent` makes one), and names the policy it
needs (`baton.security.policies`): 401 without a valid token, 403 without a role of the policy,
403 naming the agents when a request uses an agent the caller may not use. Every error is
RFC 9457 problem+json (`api.problems`). Every call under `/v1`, allowed or refused, is audited
with who, what, the outcome, IP and user agent; a run the API starts is audited by the client
acting for the caller, so the trail names the person, not the API.

`/healthz` (the process answers) and `/readyz` (Temporal and the app database answer) need no
token and say nothing about why a dependency is down (the log does).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

import httpx
import yaml
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from baton.agents import AgentRunResult, AgentSpec
from baton.api import problems
from baton.api.auth import bearer, verifier_for
from baton.compliance import AuditEntry, Processing
from baton.persistence.definitions import DefinitionStore
from baton.process import EventAccepted, ProcessDefinition, ProcessDefinitionError, ProcessState, load_process
from baton.process.model import CompiledProcess
from baton.security.jwt import Identity, JwtVerifier, TokenError
from baton.security.policies import Policy, may_use, refused_agents, satisfies
from baton.settings import BatonSettings
from baton.starter.client import BatonClient

log = logging.getLogger(__name__)
ANONYMOUS = "anonymous"
UNAUDITED = {"/healthz", "/readyz"}
SUBJECT_CHARS = 200
"""The longest token subject the audit trail records."""


# --- models at the boundary (the Python API's own where one exists) ---------------------------


class AgentSummary(BaseModel):
    name: str
    description: str
    model: str
    tools: list[str]
    roles: list[str] = Field(description="Roles that may use it; empty: anyone with AgentAccess.")


class AgentRunRequest(BaseModel):
    input: str = Field(min_length=1, max_length=100_000, description="What the agent is asked.")
    data_subject: str | None = Field(
        None, min_length=1, max_length=200, description="Whose personal data the run holds (erasable)."
    )
    processing: Processing | None = Field(None, description="Why; default: the agent's own.")


class RunInfo(BaseModel):
    """A run that was started: where to follow it."""

    run_id: str
    ui_url: str


class AgentRunStarted(RunInfo):
    result: AgentRunResult | None = Field(None, description="With `?wait=true`: the answer.")


class TemplateSummary(BaseModel):
    name: str
    latest_version: int
    created_at: datetime


class Template(BaseModel):
    name: str
    version: int
    created_at: datetime
    definition: ProcessDefinition
    mermaid: str = Field(description="The process as a Mermaid flowchart.")


class TemplateCreated(BaseModel):
    name: str
    version: int


class RunRequest(BaseModel):
    template: str = Field(min_length=1, max_length=100, description="A deployed process template.")
    version: int | None = Field(None, ge=1, description="Default: the latest.")
    event: str = Field(min_length=1, max_length=200, description="The input event that starts it.")
    data: Any = None
    key: str | None = Field(
        None, description="Run key: the workflow ID is `process-<name>-<key>`; no personal data."
    )
    data_subject: str | None = Field(None, min_length=1, max_length=200)
    processing: Processing | None = None


class EventRequest(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    data: Any = None


class Readiness(BaseModel):
    temporal: bool
    database: bool


# --- identity and policies ---------------------------------------------------------------------


async def identity(request: Request, authorization: Annotated[str | None, Header()] = None) -> Identity:
    """The caller, from a valid bearer token (401 otherwise)."""
    token = bearer(authorization)
    if not token:
        raise HTTPException(401, "a bearer token is required", {"WWW-Authenticate": "Bearer"})
    verifier: JwtVerifier = request.app.state.verifier
    try:
        who = await verifier.verify(token)
    except TokenError as e:
        raise HTTPException(401, str(e), {"WWW-Authenticate": 'Bearer error="invalid_token"'}) from None
    if len(who.subject) > SUBJECT_CHARS:  # it could not be audited
        raise HTTPException(401, f"the token's subject is longer than {SUBJECT_CHARS} characters")
    request.state.principal = who.subject
    return who


def allowed(policy: Policy) -> Callable[..., Awaitable[Identity]]:
    """A dependency: the caller, when a role of theirs satisfies `policy` (403 otherwise)."""

    async def check(who: Annotated[Identity, Depends(identity)]) -> Identity:
        if not satisfies(who, policy):
            raise HTTPException(
                403, f"this needs the {policy.value} policy, which the caller's roles do not satisfy"
            )
        return who

    return check


AgentAccess = Annotated[Identity, Depends(allowed(Policy.AGENT_ACCESS))]
TemplateManagement = Annotated[Identity, Depends(allowed(Policy.TEMPLATE_MANAGEMENT))]
Reader = Annotated[Identity, Depends(allowed(Policy.READ))]


def baton_for(request: Request, who: Identity) -> BatonClient:
    """The client, acting for the caller (so the audit trail names them)."""
    client: BatonClient = request.app.state.baton
    return client.acting_for(who.subject)


def check_agents(who: Identity, agents: list[AgentSpec]) -> None:
    if refused := refused_agents(who, agents):
        raise HTTPException(403, f"the caller may not use the agents: {', '.join(refused)}")


def agents_of(process: CompiledProcess) -> list[AgentSpec]:
    """Every agent a process's steps run, its sub-processes' included."""
    found: list[AgentSpec] = []
    for step in process.steps.values():
        if step.agent is not None:
            found.append(step.agent)
        if step.process is not None:
            found += agents_of(step.process)
    return found


# --- the application ---------------------------------------------------------------------------


def create_api(
    settings: BatonSettings, client: BatonClient | None = None, verifier: JwtVerifier | None = None
) -> FastAPI:
    """The API for `settings`; `client`: a connected client to share (`baton dev`), else one of its own."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        baton = client or await BatonClient.connect(settings)
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                app.state.verifier = verifier or verifier_for(settings, http)
                app.state.baton = baton
                app.state.definitions = baton.definitions
                yield
        finally:
            if client is None:
                await baton.close()

    app = FastAPI(
        title="Baton API",
        version="1",
        summary="Durable AI-agent processes and orchestrations on Temporal.",
        lifespan=lifespan,
        responses={
            401: {"model": problems.Problem, "description": "No valid bearer token"},
            403: {"model": problems.Problem, "description": "The caller's roles do not allow it"},
            422: {"model": problems.Problem, "description": "The request is invalid; every problem listed"},
        },
    )
    problems.install(app)
    app.middleware("http")(_audit_call)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process answers."""
        return {"status": "alive"}

    @app.get(
        "/readyz", tags=["health"], response_model=Readiness, responses={503: {"model": problems.Problem}}
    )
    async def readyz(request: Request) -> Any:
        """Temporal and the app database answer (503 naming which does not)."""
        state = await request.app.state.baton.ready()
        for part, problem in state.items():
            if problem is not None:
                log.warning("not ready: %s: %s", part, problem)
        down = [part for part, problem in state.items() if problem is not None]
        if down:
            return problems.problem(503, f"not answering: {', '.join(down)}")
        return Readiness(temporal=True, database=True)

    # Agents

    @app.get("/v1/agents", tags=["agents"])
    async def list_agents(request: Request, who: AgentAccess) -> list[AgentSummary]:
        """The agents the caller may use."""
        registry = request.app.state.baton.agents
        return [
            AgentSummary(name=a.name, description=a.description, model=a.model, tools=a.tools, roles=a.roles)
            for a in (registry[name] for name in sorted(registry))
            if may_use(who, a)
        ]

    @app.get("/v1/agents/{name}", tags=["agents"], responses={404: {"model": problems.Problem}})
    async def show_agent(request: Request, name: str, who: AgentAccess) -> AgentSpec:
        """One agent's specification."""
        agent: AgentSpec = request.app.state.baton.agents[name]
        check_agents(who, [agent])
        return agent

    @app.post(
        "/v1/agents/{name}/runs",
        tags=["agents"],
        status_code=202,
        responses={200: {"model": AgentRunStarted}, 404: {"model": problems.Problem}},
    )
    async def run_agent(
        request: Request,
        response: Response,
        name: str,
        run: AgentRunRequest,
        who: AgentAccess,
        wait: Annotated[bool, Query(description="Answer when the agent has answered.")] = False,
    ) -> AgentRunStarted:
        """Start the agent on `input`: 202 with the run, or 200 with its answer when `wait`."""
        baton = baton_for(request, who)
        agent = baton.agents[name]
        check_agents(who, [agent])
        handle = await baton.start_agent(
            agent, run.input, data_subject=run.data_subject, processing=run.processing
        )
        started = AgentRunStarted(
            run_id=handle.id, ui_url=baton.settings.workflow_url(handle.id, baton.temporal.namespace)
        )
        if wait:
            started.result = await handle.result()
            response.status_code = 200
        return started

    # Process templates

    @app.get("/v1/templates", tags=["templates"])
    async def list_templates(request: Request, who: Reader) -> list[TemplateSummary]:
        """Every deployed template, with its latest version."""
        store: DefinitionStore = request.app.state.definitions
        return [
            TemplateSummary(name=d.name, latest_version=d.version, created_at=d.created_at)
            for d in await store.latest()
        ]

    @app.get("/v1/templates/{name}", tags=["templates"], responses={404: {"model": problems.Problem}})
    async def show_template(
        request: Request, name: str, who: Reader, version: Annotated[int | None, Query(ge=1)] = None
    ) -> Template:
        """A template's definition (the latest version, or `version`) and its Mermaid flowchart."""
        deployed = await request.app.state.definitions.get(name, version)
        baton: BatonClient = request.app.state.baton
        process = load_process(deployed.definition, baton.settings.step_modules, baton.agents)
        return Template(
            name=deployed.name,
            version=deployed.version,
            created_at=deployed.created_at,
            definition=deployed.definition,
            mermaid=process.to_mermaid(),
        )

    @app.get(
        "/v1/templates/{name}/versions", tags=["templates"], responses={404: {"model": problems.Problem}}
    )
    async def template_versions(request: Request, name: str, who: Reader) -> list[int]:
        versions: list[int] = await request.app.state.definitions.versions(name)
        if not versions:
            raise HTTPException(404, f"no deployed process {name!r}")
        return versions

    @app.post(
        "/v1/templates",
        tags=["templates"],
        status_code=201,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ProcessDefinition"}},
                    "application/yaml": {"schema": {"type": "string"}},
                },
            }
        },
    )
    async def create_template(request: Request, who: TemplateManagement) -> TemplateCreated:
        """A new version of a template, from its definition in JSON or YAML (`Content-Type:
        application/yaml`), validated against the step code and agents this deployment allows;
        every problem is listed at once (422)."""
        source = await _definition_source(request)
        baton: BatonClient = request.app.state.baton
        process = load_process(source, baton.settings.step_modules, baton.agents)
        check_agents(who, agents_of(process.compiled))
        version = await request.app.state.definitions.deploy(process.to_definition())
        await baton_for(request, who).audit(
            "template.create", f"template:{process.name}", {"version": version}
        )
        return TemplateCreated(name=process.name, version=version)

    # Process runs

    @app.post(
        "/v1/runs",
        tags=["runs"],
        status_code=201,
        responses={404: {"model": problems.Problem}, 409: {"model": problems.Problem}},
    )
    async def start_run(request: Request, run: RunRequest, who: AgentAccess) -> RunInfo:
        """Start a run of a deployed template with its input event."""
        baton = baton_for(request, who)
        process = await baton.definitions.load_process(run.template, baton.settings, run.version)
        check_agents(who, agents_of(process.compiled))
        started = await baton.start_process(
            process,
            run.event,
            run.data,
            key=run.key,
            data_subject=run.data_subject,
            processing=run.processing,
        )
        return RunInfo(run_id=started.id, ui_url=started.ui_url)

    @app.get("/v1/runs/{run_id}", tags=["runs"], responses={404: {"model": problems.Problem}})
    async def run_state(request: Request, run_id: str, who: Reader) -> ProcessState:
        """What the run is doing and what it holds."""
        return await request.app.state.baton.get_run(run_id).state()

    @app.post(
        "/v1/runs/{run_id}/events",
        tags=["runs"],
        responses={400: {"model": problems.Problem}, 404: {"model": problems.Problem}},
    )
    async def send_event(
        request: Request, run_id: str, event: EventRequest, who: AgentAccess
    ) -> EventAccepted:
        """Send an input event to the run; an event it does not declare is refused (400), naming those it does."""
        return await baton_for(request, who).get_run(run_id).send_event(event.name, event.data)

    @app.post(
        "/v1/runs/{run_id}/cancel",
        tags=["runs"],
        status_code=202,
        responses={404: {"model": problems.Problem}},
    )
    async def cancel_run(request: Request, run_id: str, who: AgentAccess) -> RunInfo:
        """Ask the run to stop; its steps hear of it."""
        run = baton_for(request, who).get_run(run_id)
        await run.cancel()
        return RunInfo(run_id=run.id, ui_url=run.ui_url)

    return app


async def _definition_source(request: Request) -> dict[str, Any]:
    body = await request.body()
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip()
    try:
        if kind in ("application/yaml", "application/x-yaml", "text/yaml"):
            source = yaml.safe_load(body.decode())
        elif kind == "application/json":
            source = json.loads(body)
        else:
            raise HTTPException(
                415, f"send the definition as application/json or application/yaml, not {kind}"
            )
    except (UnicodeDecodeError, ValueError, yaml.YAMLError) as e:
        raise ProcessDefinitionError("definition", [f"not valid {kind}: {e}"]) from None
    if not isinstance(source, dict):
        raise ProcessDefinitionError("definition", ["a definition is a mapping with name, steps and routes"])
    return source


async def _audit_call(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Audit every call under /v1 with who, what and the outcome; refusals as `api.denied`."""
    response = await call_next(request)
    if request.url.path in UNAUDITED or not request.url.path.startswith("/v1"):
        return response
    denied = response.status_code in (401, 403)
    try:
        await request.app.state.baton._audit_trail().append(
            AuditEntry(
                actor=getattr(request.state, "principal", None) or ANONYMOUS,
                action="api.denied" if denied else "api.call",
                resource=request.url.path[:400],
                detail={"method": request.method, "status": response.status_code},
                ip=request.client.host if request.client else None,
                user_agent=(request.headers.get("user-agent") or "")[:400] or None,
            )
        )
    except Exception:  # the call happened; its answer stands, and the log says what is missing
        log.exception("the API call %s %s could not be audited", request.method, request.url.path)
    return response

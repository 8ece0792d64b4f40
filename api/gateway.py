"""The HTTP API: what `BatonClient` does, for services and browsers behind an identity provider.

`baton api` serves it (uvicorn); `create_api` builds it. Every route under `/v1` needs a bearer
access token, checked as the codec server checks it (`baton.security.jwt`: RS256/ES256, issuer,
audience, expiry; the dev issuer by default, where `baton token --sub alice --roles Agent` makes
one), and names the policy it needs (`baton.security.policies`, shown in the OpenAPI document as
`x-baton-policy`): 401 without a valid token, 403 without a role of the policy, and 403 naming
the agents when a request uses an agent the caller may not use. Every error is RFC 9457
problem+json (`api.problems`). A principal gets `BATON_API_RATE_LIMIT` calls a minute
(`api.limits`; 429 with Retry-After past it). Every call under `/v1`, allowed or refused, is audited with who,
what, the outcome, IP and user agent; what a call starts or changes is audited by the client
acting for the caller, so the trail names the person, not the API.

`/healthz` (the process answers) and `/readyz` (Temporal and the app database answer) need no
token, and say which dependency is down but not why (the log does).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from redis.asyncio import Redis
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from baton.api import agents, compliance, orchestrations, problems, runs, templates
from baton.api.audit import TEXT_CHARS, request_entry
from baton.api.auth import verifier_for
from baton.api.deps import policy_of
from baton.api.limits import RateLimiter
from baton.compliance import AuditEntry
from baton.security.jwt import JwtVerifier
from baton.security.policies import POLICIES
from baton.settings import BatonSettings
from baton.starter.client import BatonClient
from baton.telemetry.metrics import memory_watched, metrics_text
from baton.telemetry.tracing import instrument_app

log = logging.getLogger(__name__)
ANONYMOUS = "anonymous"


class Readiness(BaseModel):
    temporal: bool
    database: bool


def create_api(
    settings: BatonSettings, client: BatonClient | None = None, verifier: JwtVerifier | None = None
) -> FastAPI:
    """The API for `settings`; `client`: a connected client to share (`baton dev`), else one of its own."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        baton = client or await BatonClient.connect(settings)
        redis = Redis.from_url(settings.redis_url.get_secret_value()) if settings.redis_url else None
        try:
            async with (
                httpx.AsyncClient(timeout=10) as http,
                memory_watched(settings),
            ):
                app.state.verifier = verifier or verifier_for(settings, http)
                app.state.baton = baton
                app.state.limiter = RateLimiter(settings.api_rate_limit, redis)
                app.state.audit_writes = set()
                yield
                await asyncio.gather(*app.state.audit_writes)  # every call heard is audited
        finally:
            if redis is not None:
                await redis.aclose()
            if client is None:
                await baton.close()

    app = FastAPI(
        title="Baton API",
        version="1",
        summary="Durable AI-agent processes and orchestrations on Temporal.",
        lifespan=lifespan,
        responses=problems.documented(422),
        docs_url=None,  # served below, from this package's copy of Swagger UI: no CDN
        redoc_url=None,
    )
    problems.install(app)
    app.mount(
        DOCS_ASSETS, StaticFiles(directory=str(files("fastapi_offline") / "static")), name="docs-assets"
    )
    app.add_api_route("/docs", swagger_ui, methods=["GET"], include_in_schema=False)
    app.add_middleware(CallAudit)
    app.add_api_route("/healthz", healthz, methods=["GET"], tags=["health"])
    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)
    app.add_api_route(
        "/readyz",
        readyz,
        methods=["GET"],
        tags=["health"],
        response_model=Readiness,
        responses=problems.documented(503),
    )
    routers = (
        agents.router,
        orchestrations.router,
        templates.router,
        runs.router,
        compliance.router,
        compliance.audit_router,
    )
    for router in routers:
        _publish_policies(router.routes)
        app.include_router(router)
    app.openapi = lambda: _problems_documented(app)  # type: ignore[method-assign]
    instrument_app(app)
    return app


DOCS_ASSETS = "/docs-assets"


async def swagger_ui() -> HTMLResponse:
    """Swagger UI: every route, tried with a bearer token (Authorize). Its scripts and styles
    come from this server, so the page works where browsers may not reach a CDN."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="Baton API",
        swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
        swagger_ui_parameters={"persistAuthorization": True},
    )


def _problems_documented(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, every error response's body documented as what it is:
    `application/problem+json` (FastAPI writes each model's schema as application/json)."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            routes=app.routes,
            openapi_version=app.openapi_version,
        )
        for operations in schema["paths"].values():
            for operation in operations.values():
                for status, response in operation.get("responses", {}).items():
                    if status[0] in "45" and "application/json" in response.get("content", {}):
                        response["content"] = {problems.MEDIA_TYPE: response["content"]["application/json"]}
        app.openapi_schema = schema
    return app.openapi_schema


def _publish_policies(routes: list[BaseRoute]) -> None:
    """Show each route's policy, and the roles that satisfy it, in the OpenAPI document."""
    for route in routes:
        if isinstance(route, APIRoute) and (policy := policy_of(route)) is not None:
            route.openapi_extra = {
                **(route.openapi_extra or {}),
                "x-baton-policy": policy.value,
                "x-baton-roles": sorted(POLICIES[policy]),
            }


async def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "alive"}


async def metrics() -> Response:
    """Prometheus metrics of this process (labels never name a run, a user or free text)."""
    return Response(await metrics_text(), media_type=CONTENT_TYPE_LATEST)


async def readyz(request: Request) -> Any:
    """Temporal and the app database answer (503 naming which does not)."""
    state = await request.app.state.baton.ready()
    down = [part for part, problem in state.items() if problem is not None]
    for part in down:
        log.warning("not ready: %s: %s", part, state[part])
    if down:
        return problems.problem(503, f"not answering: {', '.join(down)}")
    return Readiness(temporal=True, database=True)


CLIENT_CLOSED = 499
"""The status audited for a call whose client left before it was answered (nginx's number)."""


class CallAudit:
    """ASGI middleware: audit every call under /v1 with who, what and the outcome; refusals as
    `api.denied`.

    The entry is written after the answer goes out, not before, and shares the commit of the
    next entry written (`AuditLog.append_soon`, within a quarter second): what a call starts or
    changes was audited before it was done, by the client acting for the caller; this entry
    records the call itself. Entries still being written when
    the API stops are waited for. A call that fails on the server is audited with status 500
    before its error goes on to the handler that answers it. Plain ASGI, not Starlette's
    `BaseHTTPMiddleware`, which costs each call a task and a memory stream."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except asyncio.CancelledError:  # the client went away before the answer
            _audit_answer(Request(scope), CLIENT_CLOSED if status == 500 else status)
            raise
        except Exception:
            _audit_answer(Request(scope), status)  # 500 unless the answer had begun
            raise
        _audit_answer(Request(scope), status)


def _audit_answer(request: Request, status: int) -> None:
    entry = request_entry(
        request,
        getattr(request.state, "principal", None) or ANONYMOUS,
        "api.denied" if status in (401, 403, 429) else "api.call",
        {"method": request.method, "status": status},
        resource=request.url.path[:TEXT_CHARS],
    )
    writing: set[asyncio.Task[None]] = request.app.state.audit_writes
    task = asyncio.create_task(_write(request.app.state.baton, entry, f"{request.method} {request.url.path}"))
    writing.add(task)
    task.add_done_callback(writing.discard)


async def _write(baton: BatonClient, entry: AuditEntry, call: str) -> None:
    try:
        await baton.audit_trail.append_soon(entry)
    except Exception:  # the call happened; its answer stands, and the log says what is missing
        log.exception("the API call %s could not be audited", call)

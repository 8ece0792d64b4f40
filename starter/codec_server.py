"""The codec server: Temporal's remote codec protocol (`POST /encode`, `POST /decode`) over HTTPS,
so the Temporal UI and CLI can show payloads in plain text to people allowed to see them.

Every request needs a bearer JWT (the `Authorization` header: the UI passes its user's access
token) whose roles include one of `BATON_CODEC_ROLES`; without one it is 401, with the wrong
roles 403. Browsers may call it only from `BATON_CODEC_CORS_ORIGINS`. Every decode is audited:
who, in which namespace, for which runs (named, authenticated, in the payloads' metadata).

With the embedded dev issuer (no `BATON_OIDC_ISSUER`), the local UI has no login to take a token
from, so `baton dev` gives it an endpoint that carries one in its path, `/dev/<token>/decode`:
the same JWT, checked the same way, for the dev user, on loopback only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from baton.persistence.db import engine_from_settings, session_factory
from baton.persistence.models import AuditEventRow
from baton.persistence.schema import Schema
from baton.persistence.subjects import SubjectKeys
from baton.security.codec import WORKFLOW, EncryptionCodec, PayloadDecryptionError
from baton.security.dev_issuer import DevIssuer
from baton.security.jwt import Identity, JwtVerifier, OidcKeys, TokenError
from baton.security.keys import key_provider
from baton.settings import BatonSettings

DEV_TOKEN_SECONDS = 30 * 24 * 3600
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
audit_log = logging.getLogger("baton.audit")
_WORKFLOW_IN_URL = re.compile(r"/namespaces/[^/]+/workflows/([^/?#]+)")


def create_app(settings: BatonSettings, verifier: JwtVerifier | None = None) -> FastAPI:
    """The codec server for `settings`: their keys, their issuer (the dev issuer by default)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = engine_from_settings(settings)
        try:
            schema = Schema(engine)
            await schema.ready()  # the embedded SQLite migrates itself; PostgreSQL by `baton db upgrade`
            async with httpx.AsyncClient(timeout=10) as http:
                app.state.verifier = verifier or _verifier(settings, http)
                keys = key_provider(settings)
                app.state.codec = EncryptionCodec(
                    keys, settings.compress_above_bytes, SubjectKeys(schema, keys)
                )
                app.state.sessions = session_factory(engine)
                app.state.codec_roles = settings.codec_roles
                yield
        finally:
            await engine.dispose()

    app = FastAPI(title="Baton codec server", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.codec_cors_origins,
        allow_methods=["POST"],
        allow_headers=["Authorization", "Content-Type", "X-Namespace"],
    )
    dev_routes = settings.oidc_issuer is None

    async def decode(
        request: Request, who: Allowed, x_namespace: Annotated[str, Header()] = "default"
    ) -> dict[str, Any]:
        payloads = await _payloads(request)
        try:
            decoded = await request.app.state.codec.decode(payloads.payloads)
        except PayloadDecryptionError as e:
            raise HTTPException(422, str(e)) from None
        # The runs named in the (authenticated) payloads; else the UI page that asked, if it said.
        runs: list[str | None] = [
            *sorted({p.metadata[WORKFLOW].decode() for p in payloads.payloads if WORKFLOW in p.metadata})
        ]
        if not runs:
            runs = [_workflow_from(request.headers.get("referer", ""))]
        async with request.app.state.sessions() as session:
            session.add_all(
                AuditEventRow(
                    actor=who.subject,
                    action="payload.decode",
                    namespace=x_namespace,
                    workflow_id=run,
                    detail={"payloads": len(decoded)},
                )
                for run in runs
            )
            await session.commit()
        for run in runs:
            audit_log.info(
                "decode by %s in %s, workflow %s: %d payloads", who.subject, x_namespace, run, len(decoded)
            )
        return json_format.MessageToDict(Payloads(payloads=decoded))

    async def encode(request: Request, who: Allowed) -> dict[str, Any]:
        payloads = await _payloads(request)
        return json_format.MessageToDict(
            Payloads(payloads=await request.app.state.codec.encode(payloads.payloads))
        )

    for prefix in ["", *(["/dev/{dev_token}"] if dev_routes else [])]:
        app.add_api_route(f"{prefix}/decode", decode, methods=["POST"])
        app.add_api_route(f"{prefix}/encode", encode, methods=["POST"])
    return app


async def identity(request: Request, authorization: Annotated[str | None, Header()] = None) -> Identity:
    """Who calls: a valid token (the header, or a dev endpoint's path) with a role that may decrypt."""
    dev_token = request.path_params.get("dev_token")
    if dev_token is not None and (request.client is None or request.client.host not in LOOPBACK):
        raise HTTPException(403, "dev endpoints answer only on this machine")
    token = _bearer(authorization) or dev_token
    if not token:
        raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    try:
        who: Identity = await request.app.state.verifier.verify(token)
    except TokenError as e:
        raise HTTPException(
            401, str(e), headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        ) from None
    roles: list[str] = request.app.state.codec_roles
    if not who.has_any_role(roles):
        raise HTTPException(403, f"decrypting payloads needs one of the roles {', '.join(roles)}")
    return who


Allowed = Annotated[Identity, Depends(identity)]


def dev_endpoint(settings: BatonSettings, base_url: str) -> str:
    """The codec endpoint for the local UI: with a dev-issuer token in its path (see above)."""
    if settings.oidc_issuer is not None:
        return base_url
    # Long-lived, so that a `baton dev` left running for days keeps decoding; loopback only.
    token = DevIssuer.load(settings).issue("dev", settings.codec_roles[:1], DEV_TOKEN_SECONDS)
    return f"{base_url.rstrip('/')}/dev/{token}"  # clients append /decode and /encode


def _verifier(settings: BatonSettings, http: httpx.AsyncClient) -> JwtVerifier:
    if settings.oidc_issuer is None:
        return DevIssuer.load(settings).verifier()
    return JwtVerifier(
        issuer=settings.oidc_issuer,
        audience=settings.oidc_audience,
        keys=OidcKeys(settings.oidc_issuer, http),
        roles_claim=settings.oidc_roles_claim,
    )


def _bearer(authorization: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None


async def _payloads(request: Request) -> Payloads:
    try:
        return json_format.Parse(await request.body(), Payloads())
    except json_format.ParseError as e:
        raise HTTPException(400, f"body is not a Payloads message: {e}") from None


def _workflow_from(referer: str) -> str | None:
    """The workflow the UI page shows, from the page address that made the request."""
    found = _WORKFLOW_IN_URL.search(referer)
    return found.group(1) if found else None

"""The codec server: Temporal's remote codec protocol (`POST /decode`, `POST /encode`) over HTTPS,
so the Temporal UI and CLI can show payloads in plain text to people allowed to see them.

Every request needs a bearer access token (the `Authorization` header: the UI passes its user's
access token; checked by `baton.security.jwt`) whose roles include one of `BATON_CODEC_ROLES`;
without one it is 401, with the wrong roles 403. Browsers may call it only from
`BATON_CODEC_CORS_ORIGINS`. Payloads kept out of band (Temporal's external storage, every payload
of `BATON_PAYLOAD_OFFLOAD_BYTES` or more) are fetched from the payload store, then decrypted, so
the UI shows them like any other.

Encoding (`/encode`, what the UI calls for input a person types) is off unless `BATON_CODEC_ENCODE`
is set: the codec server cannot know the run the data is for, so it seals with the master key,
where erasing a data subject cannot reach. When on, each encode is audited (caller, count).

The audit log (`audit_events`, and the `baton.audit` logger) records what is authenticated only:
a decode names the runs of the payloads that actually decrypted, whose run is bound into the
AES-GCM authentication (never the Referer, never metadata of payloads passed through), one row
per run with its payload count. Every refusal (400, 401, 403, 404, 422) is recorded too, as
`payload.decode.refused` (or `.encode.`) with the status and reason, and the caller when a valid
token named one; never the token. Bad input (a malformed body, metadata that is not text, a run
or namespace name longer than the audit log holds) gets a 4xx naming the problem, on SQLite and
PostgreSQL alike.

The dev endpoint. With the embedded dev issuer (no `BATON_OIDC_ISSUER`), the local UI has no
login to take a token from. Each codec server makes a random capability when it starts and
serves `/dev/<capability>/decode|encode` for the dev user, to loopback clients addressing it by a
loopback name only (a DNS-rebinding page cannot use it). The capability is not a JWT and never
works as a bearer token; it dies with the codec server. `baton dev` hands it to the UI in a
Temporal CLI environment file (`--env-file`, mode 0600, deleted once the UI has read it), so it
is on no command line and in no process listing (the Temporal CLI reads any flag's default
from such a file; it has no environment variable for `--ui-codec-endpoint`, and 1.9 ignores
`TEMPORAL_ENV_FILE`, so the file's path, not its content, is on the command line). Why this and
not a dev token: a signed token would be valid everywhere, for as long as it lives, wherever it
leaks; the capability is worthless off this machine and after this process. Any local user who can open the local UI can
read what it shows, as before: the embedded setup is for one person's machine.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.middleware.cors import CORSMiddleware
from google.protobuf import json_format
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import String
from sqlalchemy.orm import InstrumentedAttribute
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.sdk.v1 import ExternalStorageReference
from temporalio.converter import DataConverter, StorageDriverClaim, StorageDriverRetrieveContext

from baton.api.audit import request_entry
from baton.api.auth import bearer, verifier_for
from baton.compliance.audit import AuditLog
from baton.persistence.db import engine_from_settings
from baton.persistence.models import AuditEventRow
from baton.persistence.payloads import DatabasePayloadDriver, PayloadNotFound
from baton.security.codec import ENCODING, WORKFLOW, PayloadDecryptionError
from baton.security.jwt import Identity, JwtVerifier, TokenError
from baton.settings import BatonSettings, loopback_host
from baton.telemetry.metrics import CODEC_REQUESTS, memory_watched, metrics_text
from baton.temporal import encryption_codec, payload_store, settings_converter

DEV_USER = "dev"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]"}
REASON_CHARS = 300
"""How much of a refusal's reason the audit row keeps (it may quote a caller's input)."""
REFERENCE_TYPE = ExternalStorageReference.DESCRIPTOR.full_name.encode()
CLAIM_CHARS = 200
audit_log = logging.getLogger("baton.audit")


class Refused(HTTPException):
    """A request the codec server turns down, with the caller when a valid token named one:
    answered like any HTTPException, and audited first (see `_audit_refusal`)."""

    def __init__(
        self, status: int, reason: str, caller: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status, reason, headers)
        self.caller = caller


def create_app(
    settings: BatonSettings, verifier: JwtVerifier | None = None, converter: DataConverter | None = None
) -> FastAPI:
    """The codec server for `settings`: their keys, their issuer (the dev issuer by default).

    `converter` is the process's data converter when the server runs beside a client and workers
    (`baton dev`): its keyring, data-subject registry and payload store, never a second copy."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        serving, engine = converter, None
        if serving is None:  # a codec server of its own (`baton codec-server`)
            engine = engine_from_settings(settings)
            serving = settings_converter(settings, engine)
        try:
            store = payload_store(serving)
            await (
                store.schema.ready()
            )  # the embedded SQLite migrates itself; PostgreSQL by `baton db upgrade`
            async with (
                httpx.AsyncClient(timeout=10) as http,
                memory_watched(settings),
            ):
                app.state.verifier = verifier or verifier_for(settings, http)
                app.state.codec = encryption_codec(serving)
                app.state.payload_store = store
                app.state.audit = AuditLog(store.schema)
                app.state.codec_roles = settings.codec_roles
                yield
        finally:
            if engine is not None:
                await engine.dispose()

    app = FastAPI(title="Baton codec server", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.codec_cors_origins,
        allow_methods=["POST"],
        allow_headers=["Authorization", "Content-Type", "X-Namespace"],
    )
    app.add_exception_handler(Refused, _audit_refusal)  # type: ignore[arg-type]
    dev_routes = settings.oidc_issuer is None
    app.state.dev_capability = secrets.token_urlsafe(32) if dev_routes else None

    async def decode(request: Request, who: Allowed, namespace: Namespace) -> dict[str, Any]:
        async with _failure_audited(request, who, "decode", namespace):
            payloads = await _resolve_stored(request, await _payloads(request, who), who)
            _check_metadata(payloads, who)
            try:
                decoded = await request.app.state.codec.decode(payloads)
            except PayloadDecryptionError as e:
                raise Refused(422, str(e), who.subject) from None
        # Only what decrypted names its run, and authentically so (the run is in the AES-GCM context).
        counts: dict[str | None, int] = {}
        for payload in payloads:
            if payload.metadata.get("encoding") == ENCODING:
                run = payload.metadata[WORKFLOW].decode() if WORKFLOW in payload.metadata else None
                counts[run] = counts.get(run, 0) + 1
        if counts:
            await request.app.state.audit.append(
                *(
                    request_entry(
                        request,
                        who.subject,
                        "payload.decode",
                        {"payloads": count},
                        resource=run,
                        workflow_id=run,
                        namespace=namespace,
                    )
                    for run, count in counts.items()
                )
            )
        for run, count in counts.items():
            audit_log.info("decode by %s in %s, workflow %s: %d payloads", who.subject, namespace, run, count)
        CODEC_REQUESTS.labels("decode", "ok").inc()
        return json_format.MessageToDict(Payloads(payloads=decoded))

    async def encode(request: Request, who: Allowed, namespace: Namespace) -> dict[str, Any]:
        if not settings.codec_encode:
            raise Refused(
                403,
                "encoding is off (BATON_CODEC_ENCODE): the codec server cannot tell which run the "
                "data is for, so a data subject's erasure could not reach it; send events with "
                "'baton process send' or BatonClient",
                who.subject,
            )
        async with _failure_audited(request, who, "encode", namespace):
            payloads = await _payloads(request, who)
            encoded = await request.app.state.codec.encode(payloads)
        await request.app.state.audit.append(
            request_entry(
                request,
                who.subject,
                "payload.encode",
                {"payloads": len(payloads)},
                resource=None,
                namespace=namespace,
            )
        )
        audit_log.info("encode by %s in %s: %d payloads", who.subject, namespace, len(payloads))
        CODEC_REQUESTS.labels("encode", "ok").inc()
        return json_format.MessageToDict(Payloads(payloads=encoded))

    for prefix in ["", *(["/dev/{capability}"] if dev_routes else [])]:
        app.add_api_route(f"{prefix}/decode", decode, methods=["POST"])
        app.add_api_route(f"{prefix}/encode", encode, methods=["POST"])
    app.add_api_route("/metrics", _metrics, methods=["GET"])
    app.add_api_route("/healthz", _healthz, methods=["GET"])
    return app


async def identity(request: Request, authorization: Annotated[str | None, Header()] = None) -> Identity:
    """Who calls: the dev user on a dev endpoint, else a valid token with a role that may decrypt."""
    capability = request.path_params.get("capability")
    if capability is not None:
        return _dev_user(request, capability)
    token = bearer(authorization)
    if not token:
        raise Refused(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    try:
        who: Identity = await request.app.state.verifier.verify(token)
    except TokenError as e:
        raise Refused(401, str(e), headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}) from None
    problem = _text_problem(who.subject, AuditEventRow.actor)
    if problem:  # it could not be audited
        raise Refused(403, f"the token's subject {problem}")
    roles: list[str] = request.app.state.codec_roles
    if not who.has_any_role(roles):
        raise Refused(403, f"decrypting payloads needs one of the roles {', '.join(roles)}", who.subject)
    return who


def _dev_user(request: Request, capability: str) -> Identity:
    host = request.headers.get("host", "")
    if not host.endswith("]"):  # an IPv6 literal ends with its bracket when it has no port
        host = host.rsplit(":", 1)[0]
    if request.client is None or not loopback_host(request.client.host) or host not in LOOPBACK_HOSTS:
        raise Refused(403, "dev endpoints answer only on this machine, at a loopback address")
    if not secrets.compare_digest(capability.encode(), request.app.state.dev_capability.encode()):
        raise Refused(404, "no such dev endpoint (it changes each time the codec server starts)")
    roles: list[str] = request.app.state.codec_roles
    return Identity(subject=DEV_USER, roles=frozenset(roles[:1]), claims={})


Allowed = Annotated[Identity, Depends(identity)]


def namespace(who: Allowed, x_namespace: Annotated[str, Header()] = "default") -> str:
    """The Temporal namespace the caller says it reads (the `X-Namespace` header), as audited."""
    problem = _text_problem(x_namespace, AuditEventRow.namespace)
    if problem:
        raise Refused(400, f"the X-Namespace header {problem}", who.subject)
    return x_namespace


Namespace = Annotated[str, Depends(namespace)]


def dev_endpoint(app: FastAPI, base_url: str) -> str | None:
    """The codec endpoint for the local UI (the dev endpoint, see above); None with an OIDC issuer."""
    capability: str | None = app.state.dev_capability
    if capability is None:
        return None
    return f"{base_url.rstrip('/')}/dev/{capability}"  # clients append /decode and /encode


async def _payloads(request: Request, who: Identity) -> list[Payload]:
    try:
        return list(json_format.Parse(await request.body(), Payloads()).payloads)
    except (json_format.ParseError, UnicodeDecodeError) as e:
        reason = "not UTF-8" if isinstance(e, UnicodeDecodeError) else str(e)
        raise Refused(400, f"body is not a Payloads message: {reason}", who.subject) from None


async def _resolve_stored(request: Request, payloads: list[Payload], who: Identity) -> list[Payload]:
    """`payloads` with each external storage reference (what the history holds for a payload kept
    out of band) replaced by the stored payload, still encrypted."""
    store: DatabasePayloadDriver = request.app.state.payload_store
    claims: dict[int, StorageDriverClaim] = {}
    for i, payload in enumerate(payloads):
        if (
            payload.metadata.get("encoding") == b"json/protobuf"
            and payload.metadata.get("messageType") == REFERENCE_TYPE
        ):
            claims[i] = _claim(i, payload, store.name(), who)
    if not claims:
        return payloads
    try:
        stored = await store.retrieve(StorageDriverRetrieveContext(), list(claims.values()))
    except (PayloadNotFound, KeyError) as e:
        reason = str(e) if isinstance(e, PayloadNotFound) else "a stored payload's reference lacks its claim"
        raise Refused(422, reason, who.subject) from None
    resolved = list(payloads)
    for i, payload in zip(claims, stored, strict=True):
        resolved[i] = payload
    return resolved


def _claim(index: int, payload: Payload, driver: str, who: Identity) -> StorageDriverClaim:
    try:
        reference = json_format.Parse(payload.data, ExternalStorageReference())
    except (json_format.ParseError, UnicodeDecodeError):
        raise Refused(
            422, f"payload {index} is a malformed external storage reference", who.subject
        ) from None
    if reference.driver_name != driver:
        raise Refused(
            422,
            f"payload {index} is stored by {reference.driver_name[:CLAIM_CHARS]!r}, "
            f"a storage driver this codec server does not have (only {driver!r})",
            who.subject,
        )
    if any(not value.isprintable() or len(value) > CLAIM_CHARS for value in reference.claim_data.values()):
        raise Refused(
            422, f"payload {index} is an external storage reference with a malformed claim", who.subject
        )
    return StorageDriverClaim(claim_data=dict(reference.claim_data))


def _check_metadata(payloads: Sequence[Payload], who: Identity) -> None:
    """Refuse encrypted payloads whose metadata is not text, or names a run the audit cannot hold."""
    for i, payload in enumerate(payloads):
        if payload.metadata.get("encoding") != ENCODING:
            continue
        for name, value in payload.metadata.items():
            try:
                text = value.decode()
            except UnicodeDecodeError:
                raise Refused(
                    422, f"payload {i}: metadata {name[:CLAIM_CHARS]!r} is not UTF-8 text", who.subject
                ) from None
            if not text.isprintable():
                raise Refused(
                    422, f"payload {i}: metadata {name[:CLAIM_CHARS]!r} has control characters", who.subject
                )
        run = payload.metadata.get(WORKFLOW)
        problem = _text_problem(run.decode(), AuditEventRow.workflow_id) if run is not None else None
        if problem:
            raise Refused(422, f"payload {i}: its run name {problem}", who.subject)


def _text_problem(value: str, column: InstrumentedAttribute[Any]) -> str | None:
    """What keeps `value` out of an audit `column` (too long, control characters), if anything."""
    column_type = column.property.columns[0].type
    limit = column_type.length if isinstance(column_type, String) else None
    if limit is not None and len(value) > limit:
        return f"is longer than {limit} characters"
    if not value.isprintable():
        return "has control characters"
    return None


async def _healthz() -> dict[str, str]:
    """For Kubernetes' probes: the process serves (it needs nothing else to decode)."""
    return {"status": "alive"}


async def _metrics() -> Response:
    """Prometheus metrics of this process: decodes and encodes by outcome, memory, the SDK's."""
    return Response(await metrics_text(), media_type=CONTENT_TYPE_LATEST)


@contextlib.asynccontextmanager
async def _failure_audited(
    request: Request, who: Identity, operation: str, namespace: str
) -> AsyncIterator[None]:
    """Audit a decode or encode that fails on the server (a 500) before its error is answered;
    refusals are audited by `_audit_refusal`."""
    try:
        yield
    except HTTPException:
        raise
    except Exception as e:
        CODEC_REQUESTS.labels(operation, "failed").inc()
        entry = request_entry(
            request,
            who.subject,
            f"payload.{operation}.failed",
            {"status": 500, "error": type(e).__name__},
            resource=None,
            namespace=namespace,
        )
        try:
            await request.app.state.audit.append(entry)
        except Exception:  # the audit trail may be what failed; the log says what is missing
            audit_log.exception("the failed %s by %s could not be audited", operation, who.subject)
        raise


async def _audit_refusal(request: Request, refused: Refused) -> Response:
    operation = request.url.path.rsplit("/", 1)[-1]  # decode or encode: the routes that refuse
    CODEC_REQUESTS.labels(operation if operation in ("decode", "encode") else "other", "refused").inc()
    namespace = request.headers.get("x-namespace", "default")
    if _text_problem(namespace, AuditEventRow.namespace):
        namespace = "(invalid)"
    reason = str(refused.detail)[:REASON_CHARS]
    detail = {"status": refused.status_code, "reason": reason}
    await request.app.state.audit.append(
        request_entry(
            request,
            refused.caller or "",
            f"payload.{operation}.refused",
            detail,
            resource=None,
            namespace=namespace,
        )
    )
    audit_log.warning(
        "%s refused (%d) for %s: %s",
        operation,
        refused.status_code,
        refused.caller or "an unknown caller",
        reason,
    )
    return await http_exception_handler(request, refused)

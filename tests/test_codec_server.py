"""The codec server over real HTTP: who may decrypt, CORS for the UI, what the audit log records
(and what a caller cannot make it record), bad input on SQLite and PostgreSQL, payloads kept out
of band, the dev endpoint, and token checks against the dev issuer and a real OIDC issuer."""

from __future__ import annotations

import base64
import json
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import WorkflowSerializationContext

from baton.api.codec_server import create_app
from baton.persistence.db import create_engine
from baton.security.codec import SUBJECT, WORKFLOW
from baton.security.dev_issuer import DEV_ISSUER, KEY_ID, DevIssuer
from baton.security.jwt import UNVERIFIABLE
from baton.settings import BatonSettings
from baton.starter.devserver import codec_server
from baton.temporal import encryption_codec, payload_store, settings_converter
from baton.testing import free_port
from tests.oidc_issuer import OidcIssuer
from tests.test_cli import REPO, baton_env
from tests.test_cli import baton as baton_cli

UI = "http://127.0.0.1:8233"
SECRET = "Zebracorn launch date"


@pytest.fixture
async def server(settings: BatonSettings) -> AsyncIterator[str]:
    async with codec_server(settings, port=free_port()) as codec:
        yield codec.url


@pytest.fixture
def db_settings(settings: BatonSettings, database_url: str) -> BatonSettings:
    """This test's settings on the app database of `database_url` (SQLite, then PostgreSQL)."""
    return BatonSettings(data_dir=settings.data_dir, database_url=database_url)


@pytest.fixture
async def db_server(db_settings: BatonSettings) -> AsyncIterator[str]:
    async with codec_server(db_settings, port=free_port()) as codec:
        yield codec.url


@pytest.fixture
def issuer(settings: BatonSettings) -> DevIssuer:
    return DevIssuer.load(settings)


async def sealed(settings: BatonSettings, *values: Any, run: str | None = "process-Demo-42") -> list[Payload]:
    """`values` as Baton's data converter writes them into `run`'s history (encrypted; offloaded
    when large)."""
    engine = create_engine(settings.resolved_database_url)
    try:
        converter = settings_converter(settings, engine)
        if run is not None:
            converter = converter.with_context(
                WorkflowSerializationContext(namespace="default", workflow_id=run)
            )
        return await converter.encode(list(values))
    finally:
        await engine.dispose()


def body(*payloads: Payload) -> dict[str, Any]:
    return json_format.MessageToDict(Payloads(payloads=payloads))


async def encrypted_body(settings: BatonSettings, run: str = "process-Demo-42") -> dict[str, Any]:
    return body(*await sealed(settings, SECRET, run=run))


async def decode(url: str, request: dict[str, Any], **headers: str) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(f"{url}/decode", json=request, headers={"X-Namespace": "default", **headers})


def plaintexts(response: httpx.Response) -> list[Any]:
    return [json.loads(p.data) for p in json_format.ParseDict(response.json(), Payloads()).payloads]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def audit_rows(settings: BatonSettings, **where: str) -> list[dict[str, Any]]:
    """The audit rows whose columns equal `where`, oldest first."""
    engine = create_engine(settings.resolved_database_url)
    condition = " AND ".join(f"{column} = :{column}" for column in where) or "TRUE"
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.text(
                    "SELECT actor, action, namespace, workflow_id, detail FROM audit_events "
                    f"WHERE {condition} ORDER BY id"
                ),
                where,
            )
            found = [dict(row._mapping) for row in rows]
    finally:
        await engine.dispose()
    for row in found:  # JSON comes back as text from SQLite
        if isinstance(row["detail"], str):
            row["detail"] = json.loads(row["detail"])
    return found


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_an_admin_reads_payloads_and_only_the_authenticated_run_is_audited(
    db_server: str, db_settings: BatonSettings, issuer: DevIssuer
) -> None:
    run, namespace = unique("process-Demo"), unique("ns")
    # The caller can write anything into plain payloads' metadata and the Referer: neither may
    # decide which run the audit log names.
    plain = Payload(metadata={"encoding": b"json/plain", WORKFLOW: b"process-Chosen-1"}, data=b'"hello"')
    referer = f"{UI}/namespaces/default/workflows/process-Referer-1/history"
    response = await decode(
        db_server,
        body(*await sealed(db_settings, SECRET, run=run), plain),
        Referer=referer,
        **{"X-Namespace": namespace},
        **bearer(issuer.issue("alice", ["Admin"])),
    )

    assert response.status_code == 200, response.text
    assert plaintexts(response) == [SECRET, "hello"]
    assert await audit_rows(db_settings, namespace=namespace) == [
        {
            "actor": "alice",
            "action": "payload.decode",
            "namespace": namespace,
            "workflow_id": run,
            "detail": {"payloads": 1},
        }
    ]


async def test_a_payload_whose_run_was_changed_is_refused_and_that_run_is_not_audited(
    server: str, settings: BatonSettings, issuer: DevIssuer
) -> None:
    [payload] = await sealed(settings, SECRET, run="process-Mine-1")
    payload.metadata[WORKFLOW] = b"process-Someone-Else-1"
    response = await decode(server, body(payload), **bearer(issuer.issue("alice", ["Admin"])))
    assert response.status_code == 422 and "cannot be read" in response.json()["detail"]
    rows = await audit_rows(settings)
    assert [(r["action"], r["workflow_id"]) for r in rows] == [("payload.decode.refused", None)]


def forged(**overrides: Any) -> str:
    """A token like the dev issuer's, but signed with some other key."""
    claims = {
        "iss": DEV_ISSUER,
        "aud": "baton",
        "sub": "mallory",
        "roles": ["Admin"],
        "exp": int(time.time()) + 600,
    }
    return jwt.encode(
        claims | overrides,
        ec.generate_private_key(ec.SECP256R1()),
        algorithm="ES256",
        headers={"kid": KEY_ID, "typ": "at+jwt"},
    )


def unsigned() -> str:
    claims = {
        "iss": DEV_ISSUER,
        "aud": "baton",
        "sub": "mallory",
        "roles": ["Admin"],
        "exp": int(time.time()) + 600,
    }
    return jwt.encode(claims, None, algorithm="none", headers={"typ": "at+jwt"})


def signed(issuer: DevIssuer, typ: str | None = "at+jwt", **claims: Any) -> str:
    """A token the dev issuer's key signs, with any claims and type."""
    base = {"iss": DEV_ISSUER, "aud": "baton", "sub": "a", "roles": ["Admin"], "exp": int(time.time()) + 600}
    return jwt.encode(
        base | claims, issuer.private_key, algorithm="ES256", headers={"kid": KEY_ID, "typ": typ}
    )


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("no token", "a bearer token is required"),
        ("garbage", "not a JWT"),
        ("bad signature", "Signature verification failed"),
        ("alg none", "algorithm 'none' is not accepted"),
        ("shared secret", "algorithm 'HS256' is not accepted"),
        ("expired", "token expired"),
        ("wrong audience", "token is for another audience"),
        ("wrong issuer", "token is from another issuer"),
        ("algorithm of another key", "token says RS256 but its key is for ES256"),
        ("roles not a list", "is not a list of roles"),
        ("roles a string", "is not a list of roles"),
        ("an ID token", "token type 'JWT' is not an access token"),
        ("no token type", "token type None is not an access token"),
    ],
)
async def test_requests_without_a_valid_token_get_401(
    server: str, settings: BatonSettings, issuer: DevIssuer, case: str, expected: str
) -> None:
    tokens = {
        "garbage": "not.a.jwt",
        "bad signature": forged(),
        "alg none": unsigned(),
        "shared secret": jwt.encode(
            {"sub": "mallory"}, "secret-key-that-is-long-enough-32b", algorithm="HS256"
        ),
        "expired": issuer.issue("alice", ["Admin"], ttl_seconds=-120),
        "wrong audience": DevIssuer(issuer.private_key, "someone-else").issue("alice", ["Admin"]),
        "algorithm of another key": jwt.encode(
            {"iss": DEV_ISSUER, "aud": "baton", "sub": "a", "exp": int(time.time()) + 600},
            rsa.generate_private_key(public_exponent=65537, key_size=2048),
            algorithm="RS256",
            headers={"kid": KEY_ID, "typ": "at+jwt"},
        ),
        "roles not a list": signed(issuer, roles=5),
        "roles a string": signed(issuer, roles="Admin"),
        "an ID token": signed(issuer, typ="JWT"),
        "no token type": signed(issuer, typ=None),
        "wrong issuer": signed(issuer, iss="https://evil.example"),
    }
    headers = bearer(tokens[case]) if case in tokens else {}
    response = await decode(server, await encrypted_body(settings), **headers)
    assert response.status_code == 401
    assert expected in response.json()["detail"]


async def test_a_token_without_a_decrypting_role_gets_403(
    server: str, settings: BatonSettings, issuer: DevIssuer
) -> None:
    response = await decode(server, await encrypted_body(settings), **bearer(issuer.issue("bob", ["Agent"])))
    assert response.status_code == 403 and "needs one of the roles Admin" in response.json()["detail"]


async def test_refusals_are_audited_with_reason_and_caller_but_never_the_token(
    db_server: str, db_settings: BatonSettings, issuer: DevIssuer
) -> None:
    namespace = unique("ns")
    [tampered] = await sealed(db_settings, SECRET)
    tampered.data = tampered.data[:-1] + bytes([tampered.data[-1] ^ 1])
    garbage = "not-a-jwt-" + secrets.token_hex(8)
    bob, alice = issuer.issue("bob", ["Agent"]), issuer.issue("alice", ["Admin"])
    calls = [
        ({}, await encrypted_body(db_settings)),
        (bearer(garbage), await encrypted_body(db_settings)),
        (bearer(bob), await encrypted_body(db_settings)),
        (bearer(alice), body(tampered)),
    ]
    for headers, request in calls:
        response = await decode(db_server, request, **{"X-Namespace": namespace}, **headers)
        assert response.status_code in (401, 403, 422), response.text
    async with httpx.AsyncClient() as http:
        malformed = await http.post(
            f"{db_server}/decode", content=b"{", headers={"X-Namespace": namespace, **bearer(alice)}
        )
    assert malformed.status_code == 400

    rows = await audit_rows(db_settings, namespace=namespace)
    assert [(r["actor"], r["action"], r["workflow_id"], r["detail"]["status"]) for r in rows] == [
        ("", "payload.decode.refused", None, 401),
        ("", "payload.decode.refused", None, 401),
        ("bob", "payload.decode.refused", None, 403),
        ("alice", "payload.decode.refused", None, 422),
        ("alice", "payload.decode.refused", None, 400),
    ]
    assert rows[0]["detail"]["reason"] == "a bearer token is required"
    assert "needs one of the roles" in rows[2]["detail"]["reason"]
    assert "cannot be read" in rows[3]["detail"]["reason"]
    for token in (garbage, bob, alice):
        assert token not in json.dumps(rows)


def with_metadata(payload: Payload, **metadata: bytes) -> Payload:
    changed = Payload()
    changed.CopyFrom(payload)
    for name, value in metadata.items():
        changed.metadata[name] = value
    return changed


@pytest.mark.parametrize(
    ("case", "status", "expected"),
    [
        ("run name not UTF-8", 422, f"metadata '{WORKFLOW}' is not UTF-8 text"),
        ("subject not UTF-8", 422, f"metadata '{SUBJECT}' is not UTF-8 text"),
        ("run name with a NUL", 422, f"metadata '{WORKFLOW}' has control characters"),
        ("run name too long", 422, "its run name is longer than 400 characters"),
        ("namespace too long", 400, "the X-Namespace header is longer than 200 characters"),
    ],
)
async def test_bad_input_gets_a_4xx_naming_the_problem_on_every_database(
    db_server: str, db_settings: BatonSettings, issuer: DevIssuer, case: str, status: int, expected: str
) -> None:
    caller = unique("alice")
    [payload] = await sealed(db_settings, SECRET)
    namespace = "default"
    match case:
        case "run name not UTF-8":
            payload = with_metadata(payload, **{WORKFLOW: b"process-\xff\xfe"})
        case "subject not UTF-8":
            payload = with_metadata(payload, **{SUBJECT: b"\xc3\x28"})
        case "run name with a NUL":
            payload = with_metadata(payload, **{WORKFLOW: b"process-\x00"})
        case "run name too long":  # authentic: sealed for a run of that name
            [payload] = await sealed(db_settings, SECRET, run="process-" + "x" * 500)
        case "namespace too long":
            namespace = "n" * 300

    response = await decode(
        db_server, body(payload), **{"X-Namespace": namespace}, **bearer(issuer.issue(caller, ["Admin"]))
    )

    assert response.status_code == status, response.text
    assert expected in response.json()["detail"]
    [refusal] = await audit_rows(db_settings, actor=caller)
    assert refusal["action"] == "payload.decode.refused" and refusal["detail"]["status"] == status


@pytest.mark.parametrize("run", [b"process-\xff\xfe", b"process-\x00", b"process-" + b"x" * 500])
async def test_payloads_passed_through_are_returned_and_their_metadata_never_audited(
    db_server: str, db_settings: BatonSettings, issuer: DevIssuer, run: bytes
) -> None:
    """Plain payloads (histories from before encryption) come back as they are; what their
    metadata says is nobody's word, so it is neither read nor written to the audit log."""
    caller = unique("alice")
    plain = Payload(metadata={"encoding": b"json/plain", WORKFLOW: run}, data=b'"hello"')
    response = await decode(db_server, body(plain), **bearer(issuer.issue(caller, ["Admin"])))
    assert response.status_code == 200, response.text
    assert plaintexts(response) == ["hello"]
    assert await audit_rows(db_settings, actor=caller) == []


async def test_offloaded_payloads_are_fetched_from_the_store_and_decrypted(
    db_server: str, db_settings: BatonSettings, issuer: DevIssuer
) -> None:
    run = unique("process-Large")
    # Random text compresses little: it stays above the 32 KB threshold after compression.
    document = "Zebracorn manual: " + base64.b64encode(secrets.token_bytes(48 * 1024)).decode()
    payloads = await sealed(db_settings, document, SECRET, run=run)
    assert json.loads(payloads[0].data)["driverName"] == "baton-db"  # the history holds a reference

    response = await decode(db_server, body(*payloads), **bearer(issuer.issue("alice", ["Admin"])))

    assert response.status_code == 200, response.text
    assert plaintexts(response) == [document, SECRET]
    assert [
        (r["workflow_id"], r["detail"])
        for r in await audit_rows(db_settings, action="payload.decode")
        if r["workflow_id"] == run
    ] == [(run, {"payloads": 2})]


async def test_a_decode_that_fails_on_the_server_is_a_bare_500_and_audited(
    db_server: str, db_settings: BatonSettings, issuer: DevIssuer
) -> None:
    """A real fault (the payload table gone while an offloaded payload is read): 500 without the
    database's words, and the attempt in the audit trail with its caller."""
    document = "Zebracorn manual: " + base64.b64encode(secrets.token_bytes(48 * 1024)).decode()
    payloads = await sealed(db_settings, document, run=unique("process-Large"))
    engine = create_engine(db_settings.resolved_database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("ALTER TABLE stored_payloads RENAME TO stored_payloads_away"))
        try:
            response = await decode(
                db_server, body(*payloads), **bearer(issuer.issue("carol-500", ["Admin"]))
            )
        finally:
            async with engine.begin() as conn:
                await conn.execute(sa.text("ALTER TABLE stored_payloads_away RENAME TO stored_payloads"))
    finally:
        await engine.dispose()
    assert response.status_code == 500
    assert "stored_payloads" not in response.text and "Traceback" not in response.text
    rows = await audit_rows(db_settings, actor="carol-500")
    assert [(r["action"], r["detail"]["status"]) for r in rows] == [("payload.decode.failed", 500)]


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ({"driverName": "baton-db", "claimData": {"digest": "0" * 64}}, "is missing from the app database"),
        ({"driverName": "s3", "claimData": {"key": "x"}}, "a storage driver this codec server does not have"),
        ({"driverName": "baton-db", "claimData": {"digest": "\u0000"}}, "with a malformed claim"),
        ({"driverName": "baton-db", "claimData": {}}, "lacks its claim"),
    ],
)
async def test_a_reference_to_nothing_gets_422(
    db_server: str, issuer: DevIssuer, reference: dict[str, Any], expected: str
) -> None:
    payload = Payload(
        metadata={
            "encoding": b"json/protobuf",
            "messageType": b"temporal.api.sdk.v1.ExternalStorageReference",
        },
        data=json.dumps(reference).encode(),
    )
    response = await decode(db_server, body(payload), **bearer(issuer.issue("alice", ["Admin"])))
    assert response.status_code == 422 and expected in response.json()["detail"]


def reference_payload(data: bytes) -> Payload:
    return Payload(
        metadata={
            "encoding": b"json/protobuf",
            "messageType": b"temporal.api.sdk.v1.ExternalStorageReference",
        },
        data=data,
    )


NESTED = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    ("request_body", "status", "expected"),
    [
        (b"\xff\xfe{}", 400, "body is not a Payloads message"),
        (NESTED, 400, "body is not a Payloads message"),
        (b'{"payloads": "x"}', 400, "body is not a Payloads message"),
        (json.dumps(body(reference_payload(b"\xff"))).encode(), 422, "malformed external storage reference"),
        (json.dumps(body(reference_payload(NESTED))).encode(), 422, "malformed external storage reference"),
        (json.dumps(body(reference_payload(b"[1]"))).encode(), 422, "malformed external storage reference"),
    ],
    ids=["not UTF-8", "nested too deep", "wrong shape", "reference not UTF-8", "reference too deep", "list"],
)
async def test_a_body_that_is_not_payloads_gets_a_4xx_never_a_500(
    server: str, issuer: DevIssuer, request_body: bytes, status: int, expected: str
) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{server}/decode",
            content=request_body,
            headers={"Content-Type": "application/json", **bearer(issuer.issue("alice", ["Admin"]))},
        )
    assert response.status_code == status, response.text
    assert expected in response.json()["detail"]


async def test_encoding_is_off_unless_enabled_and_then_audited(
    settings: BatonSettings, issuer: DevIssuer
) -> None:
    plain = body(Payload(metadata={"encoding": b"json/plain"}, data=b'"typed in the UI"'))
    admin = bearer(issuer.issue("alice", ["Admin"]))
    async with httpx.AsyncClient() as http:
        async with codec_server(settings, port=free_port()) as codec:
            refused = await http.post(f"{codec.url}/encode", json=plain, headers=admin)
        enabled = settings.model_copy(update={"codec_encode": True})
        async with codec_server(enabled, port=free_port()) as codec:
            encoded = await http.post(f"{codec.url}/encode", json=plain, headers=admin)
            decoded = await http.post(f"{codec.url}/decode", json=encoded.json(), headers=admin)

    assert refused.status_code == 403 and "encoding is off (BATON_CODEC_ENCODE)" in refused.json()["detail"]
    assert encoded.status_code == 200 and plaintexts(decoded) == ["typed in the UI"]
    rows = await audit_rows(settings, actor="alice")
    assert [(r["action"], r["detail"].get("payloads")) for r in rows] == [
        ("payload.encode.refused", None),
        ("payload.encode", 1),
        ("payload.decode", 1),
    ]


async def test_cors_admits_the_ui_and_nobody_else(server: str) -> None:
    async with httpx.AsyncClient() as http:
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,x-namespace",
        }
        ui = await http.options(f"{server}/decode", headers={"Origin": UI, **preflight})
        evil = await http.options(f"{server}/decode", headers={"Origin": "https://evil.example", **preflight})
    assert ui.status_code == 200 and ui.headers["access-control-allow-origin"] == UI
    assert evil.status_code == 400 and "access-control-allow-origin" not in evil.headers


async def test_the_dev_endpoint_is_a_capability_of_this_server_start_and_no_bearer_token(
    settings: BatonSettings, issuer: DevIssuer
) -> None:
    async with codec_server(settings, port=free_port()) as earlier:
        assert earlier.dev_endpoint is not None
    async with codec_server(settings, port=free_port()) as codec, httpx.AsyncClient() as http:
        assert codec.dev_endpoint is not None
        capability = codec.dev_endpoint.rsplit("/", 1)[1]
        request = await encrypted_body(settings)
        decoded = await http.post(f"{codec.dev_endpoint}/decode", json=request)
        as_bearer = await http.post(f"{codec.url}/decode", json=request, headers=bearer(capability))
        stale = await http.post(
            f"{codec.url}/dev/{earlier.dev_endpoint.rsplit('/', 1)[1]}/decode", json=request
        )
        token_in_path = await http.post(
            f"{codec.url}/dev/{issuer.issue('alice', ['Admin'])}/decode", json=request
        )

    assert decoded.status_code == 200 and plaintexts(decoded) == [SECRET]
    assert as_bearer.status_code == 401 and as_bearer.json()["detail"] == "not a JWT"
    assert stale.status_code == 404 and token_in_path.status_code == 404
    rows = await audit_rows(settings, action="payload.decode")
    assert [(r["actor"], r["workflow_id"]) for r in rows] == [("dev", "process-Demo-42")]


async def test_dev_endpoints_answer_only_loopback_clients_at_loopback_names(settings: BatonSettings) -> None:
    port = free_port()
    async with codec_server(settings, host="0.0.0.0", port=port) as codec, httpx.AsyncClient() as http:
        assert codec.dev_endpoint is not None
        url = f"http://127.0.0.1:{port}/dev/" + codec.dev_endpoint.rsplit("/", 1)[1] + "/decode"
        request = await encrypted_body(settings)
        # A remote client, as a reverse proxy on this machine relays it (uvicorn takes the client's
        # address from a loopback proxy's X-Forwarded-For): the endpoint sees that client, not the proxy.
        remote = await http.post(url, json=request, headers={"X-Forwarded-For": "203.0.113.9"})
        # A page whose name was rebound to 127.0.0.1 (DNS rebinding) sends its own name as Host.
        rebound = await http.post(url, json=request, headers={"Host": "evil.example"})
        local = await http.post(url.replace("127.0.0.1", "localhost"), json=request)
    assert remote.status_code == 403 and rebound.status_code == 403
    assert "only on this machine" in remote.json()["detail"]
    assert local.status_code == 200


async def test_with_an_oidc_issuer_there_is_no_dev_endpoint(
    settings: BatonSettings, issuer: DevIssuer
) -> None:
    oidc = settings.model_copy(update={"oidc_issuer": "https://login.example.com"})
    verifier = issuer.verifier()
    async with codec_server(oidc, port=free_port(), verifier=verifier) as codec, httpx.AsyncClient() as http:
        response = await http.post(
            f"{codec.url}/dev/{secrets.token_urlsafe(32)}/decode", json={"payloads": []}
        )
    assert response.status_code == 404 and codec.dev_endpoint is None


@pytest.fixture
def oidc() -> Iterator[OidcIssuer]:
    issuer = OidcIssuer()
    yield issuer
    issuer.close()


async def test_an_oidc_issuers_access_tokens_are_accepted_and_its_outage_is_not_told_to_callers(
    settings: BatonSettings, oidc: OidcIssuer
) -> None:
    configured = settings.model_copy(update={"oidc_issuer": oidc.url})
    async with codec_server(configured, port=free_port()) as codec:
        accepted = await decode(codec.url, await encrypted_body(settings), **bearer(oidc.token()))
        id_token = await decode(codec.url, await encrypted_body(settings), **bearer(oidc.token(typ="JWT")))
        oidc.down = True
        oidc.keys["rsa-2"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        during_outage = await decode(
            codec.url, await encrypted_body(settings), **bearer(oidc.token(kid="rsa-2"))
        )

    assert accepted.status_code == 200 and plaintexts(accepted) == [SECRET]
    assert id_token.status_code == 401
    assert during_outage.status_code == 401 and during_outage.json()["detail"] == UNVERIFIABLE


async def test_baton_token_prints_a_dev_issuer_access_token(
    settings: BatonSettings, issuer: DevIssuer
) -> None:
    result = await baton_cli(settings, "token", "--sub", "alice", "--roles", "Admin,Auditor")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    identity = await issuer.verifier().verify(token)
    assert identity.subject == "alice" and identity.roles == {"Admin", "Auditor"}


async def test_baton_codec_server_hands_the_ui_its_endpoint_in_a_private_file(
    settings: BatonSettings,
) -> None:
    port = free_port()
    command = [str(Path(sys.executable).with_name("baton")), "codec-server", "--port", str(port)]
    server = subprocess.Popen(
        command,
        cwd=REPO,
        env=baton_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        for line in server.stdout:  # it prints the file once it serves
            found = re.search(r"--env-file (\S+)", line)
            if found:
                break
        else:
            pytest.fail(f"baton codec-server never named its environment file (status {server.wait()})")
        env_file = Path(found.group(1))
        assert env_file.stat().st_mode & 0o777 == 0o600
        endpoint = json.loads(env_file.read_text())["env"]["default"]["ui-codec-endpoint"]
        assert endpoint.rsplit("/", 1)[1] not in line  # the capability is not printed
        response = await decode(endpoint, await encrypted_body(settings))
        assert response.status_code == 200 and plaintexts(response) == [SECRET]
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)
    assert server.returncode == 0 and not env_file.exists()


async def test_beside_a_client_the_codec_server_shares_its_keys_and_subject_registry(
    settings: BatonSettings,
) -> None:
    """`baton dev` runs the codec server, a client and workers in one process: one keyring and
    one data-subject registry for all, so an erasure or a rotation reaches them together."""
    engine = create_engine(settings.resolved_database_url)
    try:
        converter = settings_converter(settings, engine)
        app = create_app(settings, converter=converter)
        async with app.router.lifespan_context(app):
            codec = app.state.codec
            assert codec is encryption_codec(converter)
            assert codec.subjects is encryption_codec(converter).subjects
            assert app.state.payload_store is payload_store(converter)
    finally:
        await engine.dispose()

"""The codec server over real HTTP: who may decrypt, CORS for the UI, audit, and token checks
against the dev issuer and a real OIDC issuer (discovery and JWKS served over HTTP)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from baton.persistence.db import create_engine
from baton.security.codec import EncryptionCodec
from baton.security.dev_issuer import DEV_ISSUER, KEY_ID, DevIssuer
from baton.security.jwt import JwtVerifier, OidcKeys, TokenError
from baton.security.keys import key_provider
from baton.settings import BatonSettings
from starter.codec_server import dev_endpoint
from starter.devserver import codec_server
from tests.test_cli import baton as baton_cli

UI = "http://127.0.0.1:8233"
SECRET = "Zebracorn launch date"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def server(settings: BatonSettings) -> AsyncIterator[str]:
    async with codec_server(settings, port=free_port()) as url:
        yield url


@pytest.fixture
def issuer(settings: BatonSettings) -> DevIssuer:
    return DevIssuer.load(settings)


async def encrypted_body(settings: BatonSettings) -> dict[str, Any]:
    codec = EncryptionCodec(key_provider(settings))
    plain = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(SECRET).encode())
    return json_format.MessageToDict(Payloads(payloads=await codec.encode([plain])))


async def decode(url: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(f"{url}/decode", json=body, headers={"X-Namespace": "default", **headers})


def plaintexts(response: httpx.Response) -> list[str]:
    return [json.loads(p.data) for p in json_format.ParseDict(response.json(), Payloads()).payloads]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_an_admin_reads_payloads_and_the_decode_is_audited(
    server: str, settings: BatonSettings, issuer: DevIssuer
) -> None:
    referer = f"{UI}/namespaces/default/workflows/process-Demo-42/history"
    response = await decode(
        server, await encrypted_body(settings), Referer=referer, **bearer(issuer.issue("alice", ["Admin"]))
    )

    assert response.status_code == 200, response.text
    assert plaintexts(response) == [SECRET]
    engine = create_engine(settings.resolved_database_url)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(sa.text("SELECT actor, action, namespace, workflow_id FROM audit_events"))
            ).all()
    finally:
        await engine.dispose()
    assert [tuple(r) for r in rows] == [("alice", "payload.decode", "default", "process-Demo-42")]


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
        headers={"kid": KEY_ID},
    )


def unsigned() -> str:
    claims = {
        "iss": DEV_ISSUER,
        "aud": "baton",
        "sub": "mallory",
        "roles": ["Admin"],
        "exp": int(time.time()) + 600,
    }
    return jwt.encode(claims, None, algorithm="none")


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
            headers={"kid": KEY_ID},
        ),
        "roles not a list": jwt.encode(
            {"iss": DEV_ISSUER, "aud": "baton", "sub": "a", "roles": 5, "exp": int(time.time()) + 600},
            issuer.private_key,
            algorithm="ES256",
            headers={"kid": KEY_ID},
        ),
        "wrong issuer": jwt.encode(
            {"iss": "https://evil.example", "aud": "baton", "sub": "a", "exp": int(time.time()) + 600},
            issuer.private_key,
            algorithm="ES256",
            headers={"kid": KEY_ID},
        ),
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


async def test_the_dev_endpoint_carries_its_token_in_the_path(
    server: str, settings: BatonSettings, issuer: DevIssuer
) -> None:
    endpoint = dev_endpoint(settings, server)
    async with httpx.AsyncClient() as http:
        decoded = await http.post(f"{endpoint}/decode", json=await encrypted_body(settings))
        forged_path = await http.post(f"{server}/dev/{forged()}/decode", json=await encrypted_body(settings))
        agent_path = await http.post(
            f"{server}/dev/{issuer.issue('bob', ['Agent'])}/decode", json={"payloads": []}
        )
    assert decoded.status_code == 200 and plaintexts(decoded) == [SECRET]
    assert forged_path.status_code == 401 and agent_path.status_code == 403


async def test_with_an_oidc_issuer_there_is_no_dev_endpoint(
    settings: BatonSettings, issuer: DevIssuer
) -> None:
    oidc = settings.model_copy(update={"oidc_issuer": "https://login.example.com"})
    verifier = issuer.verifier()
    async with codec_server(oidc, port=free_port(), verifier=verifier) as url, httpx.AsyncClient() as http:
        response = await http.post(
            f"{url}/dev/{issuer.issue('alice', ['Admin'])}/decode", json={"payloads": []}
        )
    assert response.status_code == 404 and dev_endpoint(oidc, url) == url


async def test_baton_token_prints_a_dev_issuer_token(settings: BatonSettings, issuer: DevIssuer) -> None:
    result = await baton_cli(settings, "token", "--sub", "alice", "--roles", "Admin,Auditor")
    assert result.returncode == 0, result.stderr
    identity = await issuer.verifier().verify(result.stdout.strip())
    assert identity.subject == "alice" and identity.roles == {"Admin", "Auditor"}


class OidcIssuer:
    """A real HTTP OIDC issuer: discovery document and JWKS, with keys that can be rotated."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {
            "rsa-1": rsa.generate_private_key(public_exponent=65537, key_size=2048)
        }
        self.jwks_fetches = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks"}
                else:
                    issuer.jwks_fetches += 1
                    body = {"keys": [issuer.public(kid) for kid in issuer.keys]}
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def public(self, kid: str) -> dict[str, Any]:
        return json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.keys[kid].public_key())) | {
            "kid": kid,
            "alg": "RS256",
        }

    def token(self, kid: str = "rsa-1", **claims: Any) -> str:
        base = {
            "iss": self.url,
            "aud": "baton",
            "sub": "carol",
            "roles": ["Admin"],
            "exp": int(time.time()) + 600,
        }
        return jwt.encode(base | claims, self.keys[kid], algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def oidc() -> Iterator[OidcIssuer]:
    issuer = OidcIssuer()
    yield issuer
    issuer.http.shutdown()


async def test_tokens_of_an_oidc_issuer_are_checked_against_its_jwks(oidc: OidcIssuer) -> None:
    async with httpx.AsyncClient() as http:
        verifier = JwtVerifier(issuer=oidc.url, audience="baton", keys=OidcKeys(oidc.url, http))
        assert (await verifier.verify(oidc.token())).subject == "carol"
        assert (await verifier.verify(oidc.token(sub="dave"))).subject == "dave"
        assert oidc.jwks_fetches == 1  # cached

        oidc.keys["rsa-2"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        assert (await verifier.verify(oidc.token(kid="rsa-2"))).subject == "carol"  # rotated: fetched again
        assert oidc.jwks_fetches == 2
        with pytest.raises(TokenError, match="token is for another audience"):
            await verifier.verify(oidc.token(aud="other"))

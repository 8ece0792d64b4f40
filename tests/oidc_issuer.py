"""A real OIDC issuer over HTTP for tests: discovery document and JWKS, keys that can be rotated,
a token endpoint for the client-credentials grant, an outage switch, a gate that holds answers
back, and a count of every request it got."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import Counter
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

DISCOVERY = "/.well-known/openid-configuration"
JWKS = "/jwks"
TOKEN = "/token"


class OidcIssuer:
    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {
            "rsa-1": rsa.generate_private_key(public_exponent=65537, key_size=2048)
        }
        self.requests: Counter[str] = Counter()
        self.down = False
        """While set, every request gets a 503."""
        self.gate = threading.Event()
        """Answers wait until it is set (it is, unless a test clears it)."""
        self.gate.set()
        self.clients: dict[str, tuple[str, list[str]]] = {}
        """Client ID -> (secret, roles) for the client-credentials grant."""
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                issuer.requests[self.path] += 1
                issuer.gate.wait(30)
                if issuer.down:
                    self.send_error(503)
                    return
                if self.path == DISCOVERY:
                    body: dict[str, Any] = {
                        "issuer": issuer.url,
                        "jwks_uri": f"{issuer.url}{JWKS}",
                        "token_endpoint": f"{issuer.url}{TOKEN}",
                        "grant_types_supported": ["client_credentials"],
                    }
                else:
                    body = {"keys": [issuer.public(kid) for kid in issuer.keys]}
                self._answer(200, body)

            def do_POST(self) -> None:
                issuer.requests[self.path] += 1
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                client = issuer.clients.get(form.get("client_id", ""))
                if self.path != TOKEN or form.get("grant_type") != "client_credentials":
                    self._answer(400, {"error": "unsupported_grant_type"})
                elif client is None or not secrets.compare_digest(client[0], form.get("client_secret", "")):
                    self._answer(401, {"error": "invalid_client"})
                else:
                    token = issuer.token(sub=form["client_id"], roles=client[1])
                    self._answer(200, {"access_token": token, "token_type": "Bearer", "expires_in": 600})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()  # one send: headers and body together (no Nagle stall)
                head = (
                    f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
                ).encode()
                self.wfile.write(head + data)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def public(self, kid: str) -> dict[str, Any]:
        return json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.keys[kid].public_key())) | {
            "kid": kid,
            "alg": "RS256",
        }

    def token(self, kid: str = "rsa-1", typ: str | None = "at+jwt", **claims: Any) -> str:
        """An access token (RFC 9068 `typ`) for carol with the Admin role, unless told otherwise."""
        base = {
            "iss": self.url,
            "aud": "baton",
            "sub": "carol",
            "roles": ["Admin"],
            "exp": int(time.time()) + 600,
        }
        headers: dict[str, Any] = {"kid": kid, "typ": typ}
        return jwt.encode(base | claims, self.keys[kid], algorithm="RS256", headers=headers)

    def close(self) -> None:
        self.gate.set()
        self.http.shutdown()
        self.http.server_close()

"""A real OIDC issuer over HTTP for tests: discovery document and JWKS, keys that can be rotated,
an outage switch, a gate that holds answers back, and a count of every request it got."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

DISCOVERY = "/.well-known/openid-configuration"
JWKS = "/jwks"


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
                    body: dict[str, Any] = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}{JWKS}"}
                else:
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

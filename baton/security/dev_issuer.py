"""The dev token issuer of the embedded default: an ES256 key pair under the data folder.

`baton token --sub alice --roles Admin` prints an access token it signs (`typ` `at+jwt`, RFC 9068,
like an OIDC authority's); services that accept the dev issuer verify with its public key. Production uses an OIDC authority instead (`BATON_OIDC_ISSUER`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..settings import BatonSettings
from .jwt import JwtVerifier, StaticKeys

DEV_ISSUER = "urn:baton:dev-issuer"
KEY_ID = "baton-dev-1"


@dataclass(frozen=True)
class DevIssuer:
    private_key: ec.EllipticCurvePrivateKey
    audience: str

    @classmethod
    def load(cls, settings: BatonSettings) -> DevIssuer:
        """The issuer whose key pair is in the data folder, created (mode 0600) on first use."""
        path = settings.data_dir / "dev-issuer.pem"
        if not path.exists():
            _create_key(path)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path}: not an EC private key")
        return cls(key, settings.oidc_audience)

    def issue(
        self, subject: str, roles: list[str], ttl_seconds: int = 3600, extra: dict[str, Any] | None = None
    ) -> str:
        """An access token for `subject` with `roles`, and `extra` claims (a tenant, say)."""
        now = int(time.time())
        claims = (extra or {}) | {
            "iss": DEV_ISSUER,
            "aud": self.audience,
            "sub": subject,
            "roles": roles,
            "iat": now,
            "exp": now + ttl_seconds,
        }
        return jwt.encode(
            claims, self.private_key, algorithm="ES256", headers={"kid": KEY_ID, "typ": "at+jwt"}
        )

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.private_key.public_key()))
        return {"keys": [public | {"kid": KEY_ID, "alg": "ES256", "use": "sig"}]}

    def verifier(self) -> JwtVerifier:
        return JwtVerifier(issuer=DEV_ISSUER, audience=self.audience, keys=StaticKeys(self.jwks()))


def _create_key(path: Path) -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # created by another process meanwhile
        return
    with os.fdopen(fd, "wb") as f:
        f.write(pem)

"""Bearer tokens: validating JWTs from an OIDC issuer (the codec server now, the API later).

Only RS256 and ES256 are accepted (never `none`, never a shared secret); expiry, issuer and
audience are always checked. Keys come from the issuer's JWKS, found through OIDC discovery and
cached; a token signed with a key not seen yet triggers one refresh.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import jwt
from jwt import PyJWK, PyJWKSet

ALGORITHMS = ("RS256", "ES256")
REFETCH_SECONDS = 60.0


class TokenError(Exception):
    """A token that proves nothing: missing, malformed, badly signed, expired or for someone else."""


@dataclass(frozen=True)
class Identity:
    subject: str
    roles: frozenset[str]
    claims: dict[str, Any]

    def has_any_role(self, roles: list[str]) -> bool:
        return not self.roles.isdisjoint(roles)


class KeySource(Protocol):
    async def key(self, kid: str | None) -> PyJWK: ...


@dataclass
class StaticKeys:
    """A fixed JWK set: the dev issuer's, or keys configured by hand."""

    jwks: dict[str, Any]

    async def key(self, kid: str | None) -> PyJWK:
        return _pick(PyJWKSet.from_dict(self.jwks), kid)


@dataclass
class OidcKeys:
    """The issuer's JWKS, found by discovery (`/.well-known/openid-configuration`), cached."""

    issuer: str
    http: httpx.AsyncClient
    ttl_seconds: float = 3600
    _keys: PyJWKSet | None = field(default=None, init=False)
    _fetched_at: float = field(default=0.0, init=False)
    _refetched_at: float = field(default=float("-inf"), init=False)

    async def key(self, kid: str | None) -> PyJWK:
        fresh = self._keys is None or time.monotonic() - self._fetched_at > self.ttl_seconds
        if fresh:
            await self._fetch()
        assert self._keys is not None
        try:
            return _pick(self._keys, kid)
        except TokenError:
            # The issuer may have rotated its keys since; but tokens with made-up key IDs must not
            # make us hammer it, so at most one refetch a minute.
            if fresh or time.monotonic() - self._refetched_at < REFETCH_SECONDS:
                raise
            self._refetched_at = time.monotonic()
            await self._fetch()
            return _pick(self._keys, kid)

    async def _fetch(self) -> None:
        try:
            discovery = await self.http.get(f"{self.issuer.rstrip('/')}/.well-known/openid-configuration")
            discovery.raise_for_status()
            keys = await self.http.get(discovery.json()["jwks_uri"])
            keys.raise_for_status()
            self._keys = PyJWKSet.from_dict(keys.json())
        except (httpx.HTTPError, KeyError, ValueError, jwt.PyJWTError) as e:
            raise TokenError(f"cannot load the issuer's keys: {type(e).__name__}") from None
        self._fetched_at = time.monotonic()


def _pick(keys: PyJWKSet, kid: str | None) -> PyJWK:
    for key in keys.keys:
        if kid is None or key.key_id == kid:
            return key
    raise TokenError(f"signed with an unknown key {kid!r}")


@dataclass
class JwtVerifier:
    issuer: str
    audience: str
    keys: KeySource
    roles_claim: str = "roles"
    leeway_seconds: float = 30

    async def verify(self, token: str) -> Identity:
        """The identity a token proves; `TokenError` saying why when it proves nothing."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenError("not a JWT") from None
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise TokenError(f"algorithm {algorithm!r} is not accepted (only {', '.join(ALGORITHMS)})")
        key = await self.keys.key(header.get("kid"))
        if key.algorithm_name != algorithm:
            raise TokenError(f"token says {algorithm} but its key is for {key.algorithm_name}")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token expired") from None
        except jwt.InvalidAudienceError:
            raise TokenError("token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise TokenError("token is from another issuer") from None
        except jwt.PyJWTError as e:
            raise TokenError(f"token rejected: {e}") from None
        roles = claims.get(self.roles_claim) or []
        if isinstance(roles, str):
            roles = roles.split()
        if not isinstance(roles, list):
            raise TokenError(f"claim {self.roles_claim!r} is not a list of roles")
        return Identity(subject=str(claims["sub"]), roles=frozenset(map(str, roles)), claims=claims)

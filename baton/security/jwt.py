"""Bearer tokens: validating OAuth access tokens that are JWTs (RFC 9068) from an OIDC issuer,
for the HTTP API and the codec server.

What a token must be to prove anything:
- signed with RS256 or ES256 (never `none`, never a shared secret), by a key of the issuer;
- an access token: header `typ` `at+jwt` (or `application/at+jwt`, any case). An ID token
  (`typ` `JWT`, or none) from the same issuer says who signed in to some client, not that
  the client may call us, so it is refused;
- unexpired, from the configured issuer, for the configured audience, with a `sub`;
- its roles claim, when present, a list of strings (a string `"Admin"` is refused, not split).

Keys come from the issuer's JWKS, found through OIDC discovery (`OidcKeys`). They are held for
`ttl_seconds`; after that a request still gets an answer from the held keys for up to
`stale_seconds` more while one fetch renews them in the background, so an issuer that is down
or slow costs nobody a wait. Concurrent requests share one fetch; a failed fetch is remembered
for `failure_seconds`, during which requests that have no usable keys fail at once instead of
each waiting for the issuer again. A token signed with a key not seen yet triggers a refetch
at most once a minute. Why keys cannot be loaded is logged for operators; the caller only
learns that the token cannot be verified.

A token that verified is remembered for `VERIFIED_SECONDS` (never past its expiry), so a client
that sends the same token with every request pays the signature check once a minute, not per
request. That is well within how long the issuer's keys themselves are held (`ttl_seconds`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import jwt
from jwt import PyJWK, PyJWKSet

from baton.errors import Unauthenticated

from ..aio import of_this_loop

ALGORITHMS = ("RS256", "ES256")
ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt")
"""The `typ` header values of an RFC 9068 access token (compared case-insensitively)."""
REFETCH_SECONDS = 60.0
MAX_TOKEN_CHARS = 8_192
VERIFIED_SECONDS = 60.0
VERIFIED_ENTRIES = 10_000
"""Longer is no access token: refused before any parsing."""
UNVERIFIABLE = "the token cannot be verified"
"""What a caller hears when the issuer's keys are unavailable: nothing about the issuer's state."""

log = logging.getLogger(__name__)


class TokenError(Unauthenticated):
    """A token that proves nothing: missing, malformed, badly signed, expired or for someone else."""


@dataclass(frozen=True)
class Identity:
    subject: str
    roles: frozenset[str]
    claims: dict[str, Any]

    def has_any_role(self, roles: Iterable[str]) -> bool:
        return not self.roles.isdisjoint(roles)


class KeySource(Protocol):
    async def key(self, kid: str | None) -> PyJWK: ...


@dataclass
class StaticKeys:
    """A fixed JWK set: the dev issuer's, or keys configured by hand."""

    jwks: dict[str, Any]

    def __post_init__(self) -> None:
        self._keys = PyJWKSet.from_dict(self.jwks)  # parsed once: not per token

    async def key(self, kid: str | None) -> PyJWK:
        return _pick(self._keys, kid)


@dataclass
class OidcKeys:
    """The issuer's JWKS, found by discovery (`/.well-known/openid-configuration`) and cached as
    the module docstring describes. `clock` is monotonic seconds (replaceable in tests)."""

    issuer: str
    http: httpx.AsyncClient
    ttl_seconds: float = 3600
    stale_seconds: float = 6 * 3600
    failure_seconds: float = 5
    clock: Callable[[], float] = time.monotonic
    _keys: PyJWKSet | None = field(default=None, init=False)
    _fetched_at: float = field(default=float("-inf"), init=False)
    _failed_at: float = field(default=float("-inf"), init=False)
    _refetched_at: float = field(default=float("-inf"), init=False)
    _jwks_uri: str | None = field(default=None, init=False)
    _inflight: asyncio.Task[PyJWKSet | None] | None = field(default=None, init=False)

    async def key(self, kid: str | None) -> PyJWK:
        keys, just_fetched = await self._usable_keys()
        try:
            return _pick(keys, kid)
        except TokenError:
            # The issuer may have rotated its keys since; but tokens with made-up key IDs must not
            # make us hammer it, so at most one refetch a minute.
            if just_fetched or self.clock() - self._refetched_at < REFETCH_SECONDS:
                raise
            self._refetched_at = self.clock()
            return _pick(await self._refresh(), kid)

    async def _usable_keys(self) -> tuple[PyJWKSet, bool]:
        """The keys to check a token with, and whether they were fetched for this request."""
        age = self.clock() - self._fetched_at
        if self._keys is not None and age <= self.ttl_seconds:
            return self._keys, False
        if self._keys is not None and age <= self.ttl_seconds + self.stale_seconds:
            self._fetch_task()  # renew in the background; answer with what we have meanwhile
            return self._keys, False
        return await self._refresh(), True

    async def _refresh(self) -> PyJWKSet:
        """Fresh keys, from the fetch in flight or a new one; `TokenError` if the issuer fails."""
        task = self._fetch_task()
        # Shielded: a caller that goes away must not cancel the fetch others are waiting for.
        keys = await asyncio.shield(task) if task is not None else None
        if keys is None:
            raise TokenError(UNVERIFIABLE)
        return keys

    def _fetch_task(self) -> asyncio.Task[PyJWKSet | None] | None:
        """The fetch in flight, or a new one; None while a recent failure is remembered."""
        if of_this_loop(self._inflight) is None:
            if self.clock() - self._failed_at < self.failure_seconds:
                return None
            self._inflight = asyncio.create_task(self._fetch())
        return self._inflight

    async def _fetch(self) -> PyJWKSet | None:
        try:
            if self._jwks_uri is None:
                discovery = await self.http.get(f"{self.issuer.rstrip('/')}/.well-known/openid-configuration")
                discovery.raise_for_status()
                self._jwks_uri = str(discovery.json()["jwks_uri"])
            response = await self.http.get(self._jwks_uri)
            response.raise_for_status()
            keys = PyJWKSet.from_dict(response.json())
        except (httpx.HTTPError, KeyError, TypeError, ValueError, jwt.PyJWTError) as e:
            log.warning("cannot load the keys of OIDC issuer %s: %s: %s", self.issuer, type(e).__name__, e)
            self._jwks_uri = None  # it may have moved: discover again next time
            self._failed_at = self.clock()
            return None
        finally:
            self._inflight = None
        self._keys, self._fetched_at = keys, self.clock()
        return keys


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
    clock: Callable[[], float] = time.time
    _verified: dict[str, tuple[Identity, float]] = field(default_factory=dict, init=False, repr=False)

    async def verify(self, token: str) -> Identity:
        """The identity an access token proves; `TokenError` saying why when it proves nothing."""
        if len(token) > MAX_TOKEN_CHARS:
            raise TokenError(f"token is longer than {MAX_TOKEN_CHARS} characters")
        remembered = self._verified.get(token)
        if remembered is not None and self.clock() < remembered[1]:
            return remembered[0]
        who = await self._verify(token)
        # Until a minute from now or the token's expiry, whichever comes first.
        until = min(self.clock() + VERIFIED_SECONDS, float(who.claims["exp"]))
        self._verified[token] = (who, until)
        while len(self._verified) > VERIFIED_ENTRIES:
            del self._verified[next(iter(self._verified))]
        return who

    async def _verify(self, token: str) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenError("not a JWT") from None
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise TokenError(f"algorithm {algorithm!r} is not accepted (only {', '.join(ALGORITHMS)})")
        token_type = header.get("typ")
        if not isinstance(token_type, str) or token_type.lower() not in ACCESS_TOKEN_TYPES:
            raise TokenError(f"token type {token_type!r} is not an access token (typ must be at+jwt)")
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
        roles = claims.get(self.roles_claim, [])
        if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
            raise TokenError(f"claim {self.roles_claim!r} is not a list of roles (strings)")
        return Identity(subject=claims["sub"], roles=frozenset(roles), claims=claims)

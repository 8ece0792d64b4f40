"""Access tokens from an OIDC issuer, checked against its JWKS served over real HTTP: what a token
must be, and how the keys are fetched when the issuer rotates them, is slow, or is down."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from baton.security.jwt import UNVERIFIABLE, JwtVerifier, OidcKeys, TokenError
from tests.oidc_issuer import DISCOVERY, JWKS, OidcIssuer


class Clock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def oidc() -> Iterator[OidcIssuer]:
    issuer = OidcIssuer()
    yield issuer
    issuer.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def keys(oidc: OidcIssuer, clock: Clock) -> AsyncIterator[OidcKeys]:
    async with httpx.AsyncClient(timeout=10) as http:
        yield OidcKeys(oidc.url, http, ttl_seconds=3600, stale_seconds=600, failure_seconds=5, clock=clock)


@pytest.fixture
def verifier(oidc: OidcIssuer, keys: OidcKeys, clock: Clock) -> JwtVerifier:
    return JwtVerifier(issuer=oidc.url, audience="baton", keys=keys, clock=clock)


async def until(condition: object, what: str) -> None:
    """Wait (up to 10 s) for a background fetch to reach the issuer."""
    for _ in range(200):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


async def test_tokens_are_checked_against_the_issuers_jwks_fetched_once_and_again_after_rotation(
    oidc: OidcIssuer, verifier: JwtVerifier
) -> None:
    assert (await verifier.verify(oidc.token())).subject == "carol"
    assert (await verifier.verify(oidc.token(sub="dave"))).subject == "dave"
    assert oidc.requests == {DISCOVERY: 1, JWKS: 1}  # cached

    oidc.keys["rsa-2"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert (await verifier.verify(oidc.token(kid="rsa-2"))).subject == "carol"  # rotated: fetched again
    assert oidc.requests == {DISCOVERY: 1, JWKS: 2}  # the JWKS address is remembered
    with pytest.raises(TokenError, match="token is for another audience"):
        await verifier.verify(oidc.token(aud="other"))


@pytest.mark.parametrize("typ", ["JWT", None, "jwt", "id+jwt"])
async def test_a_token_that_is_not_an_access_token_is_refused(
    oidc: OidcIssuer, verifier: JwtVerifier, typ: str | None
) -> None:
    """An ID token from the right issuer, for the right audience, is no access token (RFC 9068)."""
    with pytest.raises(TokenError, match="is not an access token"):
        await verifier.verify(oidc.token(typ=typ))


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt", "Application/AT+JWT"])
async def test_access_token_types_are_accepted_in_any_case(
    oidc: OidcIssuer, verifier: JwtVerifier, typ: str
) -> None:
    assert (await verifier.verify(oidc.token(typ=typ))).roles == {"Admin"}


@pytest.mark.parametrize("roles", ["Admin", "Admin Auditor", ["Admin", 5], {"Admin": True}, 5])
async def test_roles_must_be_a_list_of_strings(
    oidc: OidcIssuer, verifier: JwtVerifier, roles: object
) -> None:
    with pytest.raises(TokenError, match="is not a list of roles"):
        await verifier.verify(oidc.token(roles=roles))


async def test_with_a_cold_cache_and_the_issuer_down_requests_fail_fast_and_share_one_attempt(
    oidc: OidcIssuer, verifier: JwtVerifier, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    oidc.down = True
    with caplog.at_level(logging.WARNING, logger="baton.security.jwt"):
        results = await asyncio.gather(
            *(verifier.verify(oidc.token()) for _ in range(20)), return_exceptions=True
        )
    assert all(isinstance(r, TokenError) and str(r) == UNVERIFIABLE for r in results)
    assert oidc.total_requests == 1  # twenty requests, one attempt
    assert "503" in caplog.text and oidc.url in caplog.text  # operators learn why; callers do not

    for _ in range(10):  # the failure is remembered for a few seconds: nobody waits on the issuer
        with pytest.raises(TokenError, match=UNVERIFIABLE):
            await verifier.verify(oidc.token())
    assert oidc.total_requests == 1

    clock.now += 6
    oidc.down = False
    assert (await verifier.verify(oidc.token())).subject == "carol"
    assert oidc.requests == {DISCOVERY: 2, JWKS: 1}


async def test_concurrent_requests_share_one_fetch(oidc: OidcIssuer, verifier: JwtVerifier) -> None:
    oidc.gate.clear()  # the issuer answers only when the test lets it
    waiting = [asyncio.create_task(verifier.verify(oidc.token())) for _ in range(10)]
    # Held until every request is under way: each would ask the issuer itself if they did not share.
    await until(lambda: oidc.total_requests >= 1, "the issuer was asked")
    oidc.gate.set()
    assert [who.subject for who in await asyncio.gather(*waiting)] == ["carol"] * 10
    assert oidc.requests == {DISCOVERY: 1, JWKS: 1}


async def test_expired_keys_keep_serving_for_a_bounded_time_while_the_issuer_is_down(
    oidc: OidcIssuer, verifier: JwtVerifier, clock: Clock
) -> None:
    await verifier.verify(oidc.token())
    oidc.down = True
    clock.now += 3600 + 1  # past the TTL

    for _ in range(10):
        assert (await verifier.verify(oidc.token())).subject == "carol"  # the last good keys
    await until(lambda: oidc.requests[JWKS] == 2, "a renewal was tried")
    assert oidc.requests == {DISCOVERY: 1, JWKS: 2}  # one renewal for ten requests

    clock.now += 600  # past the stale bound: no keys are trusted any more
    with pytest.raises(TokenError, match=UNVERIFIABLE):
        await verifier.verify(oidc.token())


async def test_expired_keys_are_renewed_when_the_issuer_is_back(
    oidc: OidcIssuer, verifier: JwtVerifier, clock: Clock
) -> None:
    await verifier.verify(oidc.token())
    clock.now += 3600 + 1
    oidc.keys = {"rsa-2": rsa.generate_private_key(public_exponent=65537, key_size=2048)}
    await verifier.verify(oidc.token(kid="rsa-2"))
    assert oidc.requests[JWKS] == 2


class CountingKeys:
    """The issuer's keys, counting how often a verification asked for one."""

    def __init__(self, inner: OidcKeys) -> None:
        self.inner = inner
        self.asked = 0

    async def key(self, kid: str | None) -> Any:
        self.asked += 1
        return await self.inner.key(kid)


async def test_a_verified_token_is_remembered_for_a_minute_and_never_past_its_expiry(
    oidc: OidcIssuer, keys: OidcKeys
) -> None:
    clock = Clock()
    clock.now = time.time()
    counting = CountingKeys(keys)
    verifier = JwtVerifier(issuer=oidc.url, audience="baton", keys=counting, clock=clock)
    token = oidc.token()
    for _ in range(3):
        assert (await verifier.verify(token)).subject == "carol"
    assert counting.asked == 1  # the signature was checked once
    head, _, signature = token.rpartition(".")
    forged = f"{head}.{signature[:10]}{'B' if signature[10] == 'A' else 'A'}{signature[11:]}"
    with pytest.raises(TokenError):  # another token, even one byte off, is checked on its own
        await verifier.verify(forged)
    clock.now += 61
    await verifier.verify(token)
    assert counting.asked == 3  # a minute later, checked again

    short = oidc.token(exp=int(clock.now) + 5)
    await verifier.verify(short)
    clock.now += 6  # past its expiry: not remembered, checked again (the check refuses it by real time)
    asked = counting.asked
    await verifier.verify(short)
    assert counting.asked == asked + 1

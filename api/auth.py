"""Bearer tokens for Baton's HTTP servers: which verifier checks them, and how a request carries one."""

from __future__ import annotations

import httpx

from baton.security.dev_issuer import DevIssuer
from baton.security.jwt import JwtVerifier, OidcKeys
from baton.settings import BatonSettings


def verifier_for(settings: BatonSettings, http: httpx.AsyncClient) -> JwtVerifier:
    """The configured OIDC issuer's verifier (keys by discovery, over `http`), else the dev issuer's."""
    if settings.oidc_issuer is None:
        return DevIssuer.load(settings).verifier()
    return JwtVerifier(
        issuer=settings.oidc_issuer,
        audience=settings.oidc_audience,
        keys=OidcKeys(settings.oidc_issuer, http),
        roles_claim=settings.oidc_roles_claim,
    )


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if that is what it holds."""
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None

"""What a provider's answer means for retries, decided once, here.

Temporal owns retries (providers' own retry loops are off): 429, 5xx, timeouts and broken
connections are retryable, with the provider's `Retry-After` as the next delay; 400, 401, 403,
404 and requests the provider rejects fail at once, saying what the provider answered.
"""

from __future__ import annotations

import email.utils
import time
from datetime import timedelta

import httpx
from temporalio.exceptions import ApplicationError

from baton.security.pii import default_masker

UNAVAILABLE = "ProviderUnavailable"
REJECTED = "ProviderRejected"
TIMEOUT = "ProviderTimeout"
UNREACHABLE = "ProviderUnreachable"
MALFORMED = "ProviderMalformedResponse"
CIRCUIT_OPEN = "CircuitOpen"

RETRYABLE_TYPES = (UNAVAILABLE, TIMEOUT, UNREACHABLE, MALFORMED, CIRCUIT_OPEN)
"""Error types that count against an endpoint's circuit breaker."""

MAX_MESSAGE = 300


def raise_for_provider(response: httpx.Response, endpoint: str) -> None:
    """Raise the Temporal error that a non-2xx provider response stands for."""
    status = response.status_code
    if status == 429 or status >= 500:
        raise ApplicationError(
            f"{endpoint} answered {status}: {provider_message(response)}",
            type=UNAVAILABLE,
            next_retry_delay=retry_after(response),
        )
    if status >= 400:
        raise ApplicationError(
            f"{endpoint} rejected the request with {status}: {provider_message(response)}",
            type=REJECTED,
            non_retryable=True,
        )


def transport_error(error: httpx.TransportError, endpoint: str) -> ApplicationError:
    """The retryable error for a call that never got an answer."""
    if isinstance(error, httpx.TimeoutException):
        return ApplicationError(f"{endpoint} did not answer in time ({type(error).__name__})", type=TIMEOUT)
    return ApplicationError(f"{endpoint} is unreachable: {type(error).__name__}: {error}", type=UNREACHABLE)


def malformed(endpoint: str, problem: str) -> ApplicationError:
    """A 2xx answer Baton cannot read; retryable, as a truncated body usually is transient."""
    return ApplicationError(f"{endpoint} sent a malformed response: {problem}", type=MALFORMED)


def provider_message(response: httpx.Response) -> str:
    """The provider's own error message, short and with any PII it echoed masked."""
    try:
        body = response.json()
        error = body.get("error", body) if isinstance(body, dict) else body
        message = error.get("message", error) if isinstance(error, dict) else error
        text = str(message)
    except ValueError:
        text = response.text
    text = " ".join(text.split()) or response.reason_phrase
    if len(text) > MAX_MESSAGE:
        text = text[:MAX_MESSAGE] + "…"
    return default_masker().mask(text)


def retry_after(response: httpx.Response) -> timedelta | None:
    """The delay the provider asked for (`retry-after-ms`, or `Retry-After` seconds or date)."""
    if (millis := response.headers.get("retry-after-ms")) is not None:
        try:
            return timedelta(milliseconds=max(0.0, float(millis)))
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return timedelta(seconds=max(0.0, float(value)))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return timedelta(seconds=max(0.0, when.timestamp() - time.time()))

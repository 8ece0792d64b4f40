"""What a provider's answer means for retries, decided once, here.

Temporal owns retries (providers' own retry loops are off): 429, 5xx, timeouts and broken
connections are retryable, with the provider's `Retry-After` as the next delay; 400, 401, 403,
404 and requests the provider rejects fail at once, saying what the provider answered.
"""

from __future__ import annotations

import email.utils
import math
import time
from datetime import UTC, timedelta

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
MAX_RETRY_AFTER = timedelta(minutes=10)
"""The longest delay a provider may ask for; past it, the agent's own backoff schedule decides."""


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
    seconds: float | None = None
    if (millis := response.headers.get("retry-after-ms")) is not None:
        seconds = _number(millis, 1000)
    value = response.headers.get("retry-after")
    if seconds is None and value is not None:
        seconds = _number(value, 1)
        if seconds is None:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
            if when.tzinfo is None:  # HTTP dates are GMT
                when = when.replace(tzinfo=UTC)
            seconds = when.timestamp() - time.time()
    if seconds is None:
        return None
    return min(timedelta(seconds=max(0.0, seconds)), MAX_RETRY_AFTER)


def _number(text: str, per_second: float) -> float | None:
    try:
        value = float(text) / per_second
    except ValueError:
        return None
    return value if math.isfinite(value) else None

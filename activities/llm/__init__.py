"""LLM calls as activities: providers, error classification, circuit breaker, response cache."""

from __future__ import annotations

import httpx
from redis.asyncio import Redis

from baton.security.keys import LiveKeyring, key_provider
from baton.security.pii import default_masker
from baton.settings import BatonSettings

from .activity import LlmActivities
from .breaker import CircuitBreaker, MemoryBreakerStore, RedisBreakerStore
from .cache import ResponseCache
from .providers import build_providers


def llm_activities(
    settings: BatonSettings,
    http: httpx.AsyncClient,
    redis: Redis | None,
    keyring: LiveKeyring | None = None,
) -> LlmActivities:
    """The LLM activity as configured: cache entries sealed with the process's `keyring` (a
    worker passes its client's; default: the configured keys, for the activity on its own); breaker
    and L2 cache shared through Redis when given."""
    keyring = keyring or LiveKeyring(key_provider(settings))
    breaker = CircuitBreaker(
        RedisBreakerStore(redis) if redis is not None else MemoryBreakerStore(),
        failures=settings.breaker_failures,
        open_seconds=settings.breaker_open_seconds,
    )
    cache = ResponseCache(
        keyring, max_entries=settings.cache_max_entries, ttl=settings.cache_ttl_seconds, redis=redis
    )
    return LlmActivities(
        build_providers(settings, http),
        breaker,
        cache,
        default_masker(),
        pseudonym_key=keyring.derive("pseudonyms"),
        content=settings.telemetry_content,
    )


__all__ = ["LlmActivities", "llm_activities"]

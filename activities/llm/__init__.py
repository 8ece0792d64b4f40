"""LLM calls as activities: providers, error classification, circuit breaker, response cache."""

from __future__ import annotations

import httpx
from redis.asyncio import Redis

from baton.persistence.subjects import SubjectKeys
from baton.security.keys import key_provider
from baton.security.pii import default_masker
from baton.settings import BatonSettings

from .activity import LlmActivities
from .breaker import CircuitBreaker, MemoryBreakerStore, RedisBreakerStore
from .cache import ResponseCache
from .providers import build_providers


def llm_activities(
    settings: BatonSettings, http: httpx.AsyncClient, redis: Redis | None, subjects: SubjectKeys | None = None
) -> LlmActivities:
    """The LLM activity as configured: breaker and L2 cache shared through Redis when given; runs
    that hold a data subject's data (`subjects`) are never cached, so erasure leaves no copy."""
    keyring = key_provider(settings).load()
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
        subjects=subjects,
    )


__all__ = ["LlmActivities", "llm_activities"]

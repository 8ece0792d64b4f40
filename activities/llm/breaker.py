"""A circuit breaker per provider endpoint (seed defaults: 5 failures, 30 s open).

Closed, it counts consecutive failures; at the threshold it opens and calls fail fast with a
retryable `CircuitOpen` whose delay reaches the probe time. After the open period one call goes
through as a probe (half-open): success closes the breaker, failure opens it again. The state
lives in the process, or in Redis so that every worker replica sees the same breaker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from redis.asyncio import Redis
from temporalio.exceptions import ApplicationError

from baton.telemetry.metrics import CIRCUIT_STATE

from .errors import CIRCUIT_OPEN

CLOSED, HALF_OPEN, OPEN = 0, 1, 2


class BreakerStore(Protocol):
    """Where breaker state lives; times are wall-clock seconds, so replicas agree."""

    async def open_until(self, endpoint: str) -> float | None: ...
    async def open(self, endpoint: str, until: float) -> None: ...
    async def close(self, endpoint: str) -> None: ...
    async def add_failure(self, endpoint: str) -> int: ...
    async def take_probe(self, endpoint: str, hold_seconds: float) -> bool: ...


@dataclass
class _Endpoint:
    failures: int = 0
    open_until: float | None = None
    probe_until: float = 0.0


@dataclass
class MemoryBreakerStore:
    clock: Callable[[], float] = time.time
    _endpoints: dict[str, _Endpoint] = field(default_factory=dict)

    def _get(self, endpoint: str) -> _Endpoint:
        return self._endpoints.setdefault(endpoint, _Endpoint())

    async def open_until(self, endpoint: str) -> float | None:
        return self._get(endpoint).open_until

    async def open(self, endpoint: str, until: float) -> None:
        self._endpoints[endpoint] = _Endpoint(open_until=until)

    async def close(self, endpoint: str) -> None:
        self._endpoints[endpoint] = _Endpoint()

    async def add_failure(self, endpoint: str) -> int:
        state = self._get(endpoint)
        state.failures += 1
        return state.failures

    async def take_probe(self, endpoint: str, hold_seconds: float) -> bool:
        state, now = self._get(endpoint), self.clock()
        if state.probe_until > now:
            return False
        state.probe_until = now + hold_seconds
        return True


@dataclass
class RedisBreakerStore:
    """Breaker state shared by all replicas: `baton:breaker:<endpoint>:{failures,open,probe}`."""

    redis: Redis

    def _key(self, endpoint: str, part: str) -> str:
        return f"baton:breaker:{endpoint}:{part}"

    async def open_until(self, endpoint: str) -> float | None:
        value = await self.redis.get(self._key(endpoint, "open"))
        return float(value) if value is not None else None

    async def open(self, endpoint: str, until: float) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key(endpoint, "open"), repr(until))
            pipe.delete(self._key(endpoint, "failures"), self._key(endpoint, "probe"))
            await pipe.execute()

    async def close(self, endpoint: str) -> None:
        await self.redis.delete(*(self._key(endpoint, p) for p in ("failures", "open", "probe")))

    async def add_failure(self, endpoint: str) -> int:
        return int(await self.redis.incr(self._key(endpoint, "failures")))

    async def take_probe(self, endpoint: str, hold_seconds: float) -> bool:
        # SET NX: exactly one replica wins the probe; the expiry frees it if that replica dies.
        taken = await self.redis.set(
            self._key(endpoint, "probe"), "1", nx=True, px=max(1, int(hold_seconds * 1000))
        )
        return bool(taken)


class CircuitBreaker:
    def __init__(
        self,
        store: BreakerStore,
        *,
        failures: int = 5,
        open_seconds: float = 30.0,
        probe_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.failures = failures
        self.open_seconds = open_seconds
        self.probe_seconds = probe_seconds
        """How long a probe holds the half-open slot before another call may probe."""
        self.clock = clock

    async def before_call(self, endpoint: str) -> None:
        """Let the call through, or raise `CircuitOpen` (retryable, delayed to the probe time)."""
        open_until = await self.store.open_until(endpoint)
        if open_until is None:
            return
        now = self.clock()
        if now < open_until:
            CIRCUIT_STATE.labels(endpoint).set(OPEN)
            raise _circuit_open(endpoint, open_until - now)
        if not await self.store.take_probe(endpoint, self.probe_seconds):
            raise _circuit_open(endpoint, min(self.open_seconds, self.probe_seconds))
        CIRCUIT_STATE.labels(endpoint).set(HALF_OPEN)

    async def record_success(self, endpoint: str) -> None:
        await self.store.close(endpoint)
        CIRCUIT_STATE.labels(endpoint).set(CLOSED)

    async def record_failure(self, endpoint: str) -> timedelta | None:
        """Count a failure; at the threshold, or when a probe fails, open the breaker and return
        how long until it half-opens (the earliest a retry can get through)."""
        probing = await self.store.open_until(endpoint) is not None
        if probing or await self.store.add_failure(endpoint) >= self.failures:
            await self.store.open(endpoint, self.clock() + self.open_seconds)
            CIRCUIT_STATE.labels(endpoint).set(OPEN)
            return timedelta(seconds=self.open_seconds)
        return None


def _circuit_open(endpoint: str, delay_seconds: float) -> ApplicationError:
    return ApplicationError(
        f"circuit open for {endpoint}: failing fast for {delay_seconds:.1f} s more after repeated failures",
        type=CIRCUIT_OPEN,
        next_retry_delay=timedelta(seconds=max(0.1, delay_seconds)),
    )

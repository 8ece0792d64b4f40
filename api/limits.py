"""Per-principal rate limits for the HTTP API: `BATON_API_RATE_LIMIT` calls a minute.

A fixed one-minute window per principal, counted in Redis (`INCR` and `EXPIRE`, atomic in one
transaction) when `BATON_REDIS_URL` is set, so that every API process shares the count; in the
process otherwise. When Redis does not answer, each process counts on its own until it does:
the limit still holds per process, and no call fails for want of a counter.
"""

from __future__ import annotations

import hashlib
import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

WINDOW_SECONDS = 60
log = logging.getLogger(__name__)


class RateLimiter:
    def __init__(self, per_minute: int, redis: Redis | None = None) -> None:
        self.per_minute = per_minute
        self.redis = redis
        self._local: dict[tuple[str, int], int] = {}

    async def retry_after(self, principal: str) -> int | None:
        """None when `principal` may make this call, else the seconds until it may."""
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        who = hashlib.sha256(principal.encode()).hexdigest()[:32]  # no principal's name in Redis
        count = await self._count(who, window)
        if count <= self.per_minute:
            return None
        return max(1, int((window + 1) * WINDOW_SECONDS - now + 0.999))

    async def _count(self, who: str, window: int) -> int:
        if self.redis is not None:
            try:
                key = f"baton:api:rate:{who}:{window}"
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.incr(key)
                    pipe.expire(key, 2 * WINDOW_SECONDS)
                    count, _ = await pipe.execute()
                return int(count)
            except RedisError as e:
                log.warning(
                    "rate limits counted in this process: Redis did not answer (%s)", type(e).__name__
                )
        for past in [k for k in self._local if k[1] < window]:
            del self._local[past]
        self._local[(who, window)] = self._local.get((who, window), 0) + 1
        return self._local[(who, window)]

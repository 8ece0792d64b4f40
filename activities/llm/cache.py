"""The response cache for deterministic LLM requests: L1 in process, L2 in Redis.

Deterministic means temperature 0, or an agent that opts in. The key is a keyed hash (HMAC) of
everything that shapes the answer: provider, model, messages, tool schemas and parameters.
Concurrent identical requests share one call (single-flight). Redis entries are sealed with the
keyring (they hold prompts); an entry that does not open is treated as a miss.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, cast

from pydantic import ValidationError
from pydantic_core import to_json
from redis.asyncio import Redis
from redis.exceptions import RedisError

from baton.aio import of_this_loop
from baton.llm import LlmRequest, LlmResponse, ToolSpec
from baton.security.keys import DecryptionError, LiveKeyring
from baton.telemetry.metrics import LLM_CACHE

log = logging.getLogger(__name__)


class TtlLru:
    """A bounded mapping whose entries expire `ttl` seconds after they were written."""

    def __init__(self, max_entries: int, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, Any]] = OrderedDict()

    def get(self, key: str) -> Any | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires <= self.clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: str, value: Any) -> None:
        self._entries[key] = (self.clock() + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class ResponseCache:
    def __init__(
        self, keyring: LiveKeyring, *, max_entries: int, ttl: float, redis: Redis | None = None
    ) -> None:
        self.l1 = TtlLru(max_entries, ttl)
        self.redis = redis
        self.ttl = ttl
        self._keyring = keyring
        self._key_secret = keyring.derive("llm-cache")
        self._flights: dict[str, asyncio.Future[LlmResponse]] = {}

    def key(self, request: LlmRequest, tools: list[ToolSpec]) -> str:
        """The cache key: an HMAC, so Redis never learns which prompts were asked."""
        shaping = {
            "model": request.model,
            "messages": [m.model_dump(mode="json") for m in request.messages],
            "tools": [t.model_dump(mode="json") for t in tools],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        canonical = to_json(shaping, by_alias=True)
        return hmac.new(self._key_secret, canonical, hashlib.sha256).hexdigest()

    async def get_or_call(self, key: str, call: Callable[[], Awaitable[LlmResponse]]) -> LlmResponse:
        """The cached answer for `key`, or the result of `call()`, made once however many ask."""
        if (hit := self.l1.get(key)) is not None:
            LLM_CACHE.labels("l1", "hit").inc()
            return hit.model_copy(update={"cached": "l1"})
        LLM_CACHE.labels("l1", "miss").inc()
        if (flight := of_this_loop(self._flights.get(key))) is not None:
            try:
                # Served by another caller's call: for usage accounting, as good as an L1 hit.
                return (await asyncio.shield(flight)).model_copy(update={"cached": "l1"})
            except asyncio.CancelledError:
                if not flight.cancelled():  # this caller was cancelled
                    raise
            return await self.get_or_call(key, call)  # the leader was cancelled: lead instead
        flight = asyncio.get_running_loop().create_future()
        self._flights[key] = flight
        try:
            response = await self._from_l2(key)
            if response is None:
                response = await call()
                self.l1.put(key, response)
                await self._to_l2(key, response)
            else:
                self.l1.put(key, response.model_copy(update={"cached": None}))
            flight.set_result(response)
            return response
        except asyncio.CancelledError:
            flight.cancel()
            raise
        except BaseException as e:
            flight.set_exception(e)
            # Followers see the failure; marking it retrieved keeps asyncio from warning when none wait.
            flight.exception()
            raise
        finally:
            del self._flights[key]

    async def _from_l2(self, key: str) -> LlmResponse | None:
        if self.redis is None:
            return None
        try:
            # Bytes: Baton's Redis clients never decode responses.
            sealed = cast(bytes | None, await self.redis.get(f"baton:llm:{key}"))
        except RedisError as e:
            log.warning("L2 cache unavailable, calling the provider: %s", type(e).__name__)
            return None
        if sealed is None:
            LLM_CACHE.labels("l2", "miss").inc()
            return None
        try:
            response = LlmResponse.model_validate_json(self._keyring.keyring.open(sealed, key.encode()))
        except (DecryptionError, ValidationError):
            LLM_CACHE.labels("l2", "miss").inc()
            return None
        LLM_CACHE.labels("l2", "hit").inc()
        return response.model_copy(update={"cached": "l2"})

    async def _to_l2(self, key: str, response: LlmResponse) -> None:
        if self.redis is None:
            return
        sealed = self._keyring.keyring.seal(response.model_dump_json().encode(), key.encode())
        try:
            await self.redis.set(f"baton:llm:{key}", sealed, px=int(self.ttl * 1000))
        except RedisError as e:
            log.warning("L2 cache unavailable, answer not shared: %s", type(e).__name__)

"""Heartbeats for activities whose work cannot heartbeat by itself (a step, a tool, an LLM call)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from temporalio import activity


@asynccontextmanager
async def heartbeating() -> AsyncIterator[Callable[[], None]]:
    """Heartbeat in the background while the block runs, if the activity has a heartbeat timeout.

    Temporal hands a running activity its cancellation only in the answer to a heartbeat, and
    notices a dead worker only when heartbeats stop: without them, cancelling a run never reaches
    a call in flight, and a lost worker's call waits out its whole start-to-close timeout.

    The block gets a function that stops the background beats, for work that heartbeats by
    itself from some point on (a stream, once tokens flow), so that its stalling is noticed.
    """
    timeout = activity.info().heartbeat_timeout
    if not timeout:
        yield lambda: None
        return
    beating = asyncio.create_task(_beat(timeout.total_seconds() / 3))

    def stop() -> None:
        beating.cancel()

    try:
        yield stop
    finally:
        beating.cancel()


async def _beat(every_seconds: float) -> None:
    while True:
        await asyncio.sleep(every_seconds)
        activity.heartbeat()

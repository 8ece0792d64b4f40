"""asyncio helpers for objects that outlive an event loop (a client reused by a new loop, as
tests and CLIs do): what they keep in flight belongs to the loop that started it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

F = TypeVar("F", bound=asyncio.Future)  # type: ignore[type-arg]


def of_this_loop(future: F | None) -> F | None:
    """`future` when it belongs to the running event loop, else None: one left behind by a loop
    that stopped never finishes, and another loop cannot await it."""
    if future is None or future.get_loop() is not asyncio.get_running_loop():
        return None
    return future


@contextlib.asynccontextmanager
async def in_background(work: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run `work` (a loop that never returns) as a task for the length of a block, then cancel
    it and wait until it has stopped."""
    task = asyncio.create_task(work)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

"""asyncio helpers for objects that outlive an event loop (a client reused by a new loop, as
tests and CLIs do): what they keep in flight belongs to the loop that started it."""

from __future__ import annotations

import asyncio
from typing import TypeVar

F = TypeVar("F", bound=asyncio.Future)  # type: ignore[type-arg]


def of_this_loop(future: F | None) -> F | None:
    """`future` when it belongs to the running event loop, else None: one left behind by a loop
    that stopped never finishes, and another loop cannot await it."""
    if future is None or future.get_loop() is not asyncio.get_running_loop():
        return None
    return future

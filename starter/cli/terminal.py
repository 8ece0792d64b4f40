"""Waiting on the person at the terminal without blocking the event loop or the exit."""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def in_daemon_thread(fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    """Run a blocking prompt in a daemon thread.

    Not `asyncio.to_thread`: on Ctrl-C, `asyncio.run` joins its executor's threads, and a thread
    blocked reading the terminal would hold the exit until the person presses Enter.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def call() -> None:
        try:
            result = fn(*args, **kwargs)
        except BaseException as e:  # handed to the awaiting task, which decides
            loop.call_soon_threadsafe(_settle, future, None, e)
        else:
            loop.call_soon_threadsafe(_settle, future, result, None)

    threading.Thread(target=call, daemon=True).start()
    return await future


def _settle(future: asyncio.Future[T], result: T | None, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]


async def until_stopped(*, enter: bool = False) -> None:
    """Wait for Ctrl-C or SIGTERM (and, with `enter`, a line on standard input)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    if enter:
        loop.add_reader(sys.stdin.fileno(), stop.set)
    try:
        await stop.wait()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        if enter:
            loop.remove_reader(sys.stdin.fileno())

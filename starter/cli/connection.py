"""Where a CLI command finds Temporal: the configured one, or an embedded one for this command."""

from __future__ import annotations

import contextlib

from rich.console import Console
from temporalio.client import Client

from baton.settings import BatonSettings


async def connect_or_embed(
    settings: BatonSettings, stack: contextlib.AsyncExitStack, console: Console
) -> Client:
    """The configured Temporal (`BATON_TEMPORAL_ADDRESS`, `TEMPORAL_ADDRESS` or a temporal.toml
    profile), or the one at 127.0.0.1:7233 when something listens there (its workers do the
    work); otherwise an embedded dev server with workers, stopped with `stack`."""
    from baton.starter.devserver import GRPC_PORT, dev_server, port_open
    from baton.temporal import configured_address, connect, connect_embedded, ensure_search_attributes
    from baton.workers.worker import running_workers

    if configured_address(settings) is not None or port_open("127.0.0.1", GRPC_PORT):
        return await connect(settings)
    console.print("[dim]no Temporal running: starting an embedded dev server for this run…[/]")
    await stack.enter_async_context(dev_server(settings.data_dir))
    client = await connect_embedded(settings, GRPC_PORT)
    await ensure_search_attributes(client)
    await stack.enter_async_context(running_workers(client, settings))
    return client

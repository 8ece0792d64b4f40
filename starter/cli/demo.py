"""`baton demo`: the DocumentGeneration process end to end on the embedded defaults."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from baton.agents.registry import AgentRegistry
from baton.examples import with_examples
from baton.examples.document_generation import process as document_generation
from baton.persistence.db import engine_from_settings
from baton.persistence.definitions import DefinitionStore
from baton.persistence.migrate import upgrade
from baton.persistence.schema import Schema
from baton.process import ProcessState, load_process
from baton.settings import BatonSettings
from baton.starter.cli.progress import follow_run, print_output
from baton.starter.cli.terminal import until_stopped
from baton.starter.client import BatonClient
from baton.starter.devserver import API_PORT, GRPC_PORT, api_server, dev_server_with_codec, port_open
from baton.temporal import connect_embedded, ensure_search_attributes, settings_converter
from baton.workers.worker import running_workers

DEFINITION = Path(document_generation.__file__).with_name("process.yaml")
PRODUCT = {
    "name": "Baton",
    "description": "Baton runs AI-agent processes that must not lose work, on Temporal.",
    "features": ["Durable steps that survive crashes", "Human approval that can wait for days"],
    "audience": "platform teams",
}
APPROVAL_PAUSE_S = 1.5


async def run_demo(console: Console, settings: BatonSettings) -> int:
    settings = with_examples(settings)  # whatever else is configured, the demo runs the examples
    console.rule("[bold]Baton demo: DocumentGeneration")
    engine = engine_from_settings(settings)
    try:
        await upgrade(engine)
        process = load_process(
            DEFINITION, settings.step_modules, AgentRegistry.from_dirs(settings.agent_dirs)
        )
        version = await DefinitionStore(Schema(engine)).deploy(process.to_definition())
    finally:
        await engine.dispose()
    console.print(
        f"[green]✓[/] app database ready; deployed {process.name} v{version} from {DEFINITION.name}"
    )

    async with contextlib.AsyncExitStack() as stack:
        codec_url: str | None = None
        # One converter: the codec server, the client and the workers share keys and subject keys.
        converter = settings_converter(settings, engine_from_settings(settings))
        if port_open("127.0.0.1", GRPC_PORT):
            console.print("[green]✓[/] using the Temporal already running on 127.0.0.1:7233")
        else:
            console.print("starting the Temporal dev server (UI on 127.0.0.1:8233)…")
            codec_url = await stack.enter_async_context(dev_server_with_codec(settings, converter))
            console.print(
                f"[green]✓[/] Temporal dev server is up; its UI decrypts payloads through {codec_url}"
            )
        client = await connect_embedded(settings, GRPC_PORT, converter)
        await ensure_search_attributes(client)
        await stack.enter_async_context(running_workers(client, settings))
        console.print("[green]✓[/] worker started on all queues")
        baton = BatonClient(client, settings)
        stack.push_async_callback(baton.close)
        api_url = await start_api(stack, console, settings, baton)

        # The version just deployed, already validated: no second trip to the database for it.
        deployed = process.with_version(version)
        run = await baton.start_process(deployed, "Start", PRODUCT)
        result = await follow_run(run, console, _approve_automatically(console))
        print_output(console, result)
        console.print(f"\n[bold]See the run in the Temporal UI:[/] {run.ui_url}")
        named = "types" if settings.step_activity_types else "summaries"
        console.print(
            f"  the event history shows one activity per step (its {named} name step and function),"
        )
        console.print("  and 'BatonProcess' filters runs by process in the workflow list.")
        if codec_url is None:
            console.print(
                "  (payloads are encrypted: that Temporal's UI shows them decrypted only with a codec server)"
            )
        if api_url is not None:
            console.print(f"[bold]The HTTP API:[/] {api_url}/docs, e.g.")
            console.print(
                f'  curl -H "Authorization: Bearer $(baton token --sub you --roles Viewer)" {api_url}/v1/runs/{run.id}',
                soft_wrap=True,
            )
        if sys.stdin.isatty():
            console.print("\nThe UI stays up until you press Enter (or Ctrl-C).")
            await until_stopped(enter=True)
    console.print("[green]✓[/] stopped everything the demo started")
    return 0


async def start_api(
    stack: contextlib.AsyncExitStack, console: Console, settings: BatonSettings, baton: BatonClient
) -> str | None:
    """Serve the HTTP API on 127.0.0.1:8000 for the rest of `stack`, when the port is free."""
    if port_open("127.0.0.1", API_PORT):
        console.print(f"[yellow]![/] port {API_PORT} is taken: the HTTP API is not started")
        return None
    url = await stack.enter_async_context(api_server(settings, client=baton))
    console.print(f"[green]✓[/] HTTP API at {url} (OpenAPI docs at {url}/docs)")
    return url


def _approve_automatically(console: Console) -> Any:
    async def respond(state: ProcessState) -> tuple[str, Any] | None:
        if "ApprovalReceived" not in state.accepted_events:
            return None
        console.print(
            "  [yellow]…[/] the process waits for a person's approval; the demo answers in "
            f"{APPROVAL_PAUSE_S:.1f} s ('baton process run' lets a person answer)"
        )
        await asyncio.sleep(APPROVAL_PAUSE_S)
        return "ApprovalReceived", {"approved": True, "comment": "Approved by the demo"}

    return respond

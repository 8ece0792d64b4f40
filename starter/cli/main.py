"""The `baton` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax
from temporalio.client import WorkflowFailureError
from temporalio.service import RPCError

from baton.errors import BatonError
from baton.persistence.db import engine_from_settings
from baton.persistence.definitions import DefinitionStore
from baton.persistence.migrate import upgrade
from baton.persistence.schema import Schema
from baton.process import Process, load_process
from baton.settings import BatonSettings, get_settings
from baton.starter.cli.agent import add_agent_commands
from baton.starter.cli.api import add_api_command
from baton.starter.cli.audit import add_audit_commands
from baton.starter.cli.compliance import add_compliance_commands
from baton.starter.cli.keys import add_keys_commands
from baton.starter.cli.orchestrate import add_orchestrate_command
from baton.starter.cli.pii import add_pii_commands
from baton.starter.cli.privacy import add_privacy_commands
from baton.starter.cli.security import add_security_commands
from baton.starter.cli.terminal import until_stopped
from baton.starter.cli.usage import UsageError
from baton.telemetry.logs import configure_logging
from baton.telemetry.tracing import command_span, enable_tracing, flush_tracing

console = Console()
err = Console(stderr=True)


def main(argv: list[str] | None = None) -> None:
    """Every `baton` command but `baton pii`, which `baton.starter.cli:main` runs before this module loads."""
    parser = _parser()
    args = parser.parse_args(argv)
    # The project in the current folder is importable, so that `baton process run
    # myapp.flows:process` and the worker find the user's own steps; appended, not prepended,
    # so that a folder here cannot shadow an installed package the allow-list trusts.
    sys.path.append(os.getcwd())
    code = 0
    try:
        settings = get_settings()
        configure_logging(settings.log_level, settings.log_format)
        enable_tracing()  # when the OTEL_* variables configure an exporter
        # A command is one trace; a server's requests and runs are traces of their own.
        with command_span(args.command) if not getattr(args, "serving", False) else contextlib.nullcontext():
            code = asyncio.run(args.handler(args)) or 0
    except KeyboardInterrupt:
        code = 130
    except BatonError as e:
        err.print(f"[red]error:[/] {escape(str(e))}")
        code = e.exit_code
    except WorkflowFailureError as e:
        err.print(f"[red]the run failed:[/] {escape(str(e.cause))}")
        code = 1
    except Exception as e:  # the one place where any failure becomes a message and a status
        err.print(f"[red]error:[/] {type(e).__name__}: {escape(str(e))}")
        code = 1
    flush_tracing()
    sys.stdout.flush()
    sys.stderr.flush()
    # Leave without interpreter teardown: the Temporal SDK's runtime threads can crash it
    # (sdk-python issue 300), which would turn a success into a non-zero status.
    os._exit(code)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="baton", description="Durable AI-agent processes on Temporal.")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="run the DocumentGeneration process end to end on embedded Temporal")
    p.set_defaults(handler=_demo)

    p = sub.add_parser("dev", help="Temporal dev server with UI, and a worker for every queue, until Ctrl-C")
    p.set_defaults(handler=_dev, serving=True)

    p = sub.add_parser("worker", help="a worker against BATON_TEMPORAL_ADDRESS")
    p.add_argument("--queues", nargs="+", help="task queues to serve (default: all of Baton's)")
    p.set_defaults(handler=_worker, serving=True)

    db = sub.add_parser("db", help="the app database").add_subparsers(required=True, metavar="ACTION")
    p = db.add_parser("upgrade", help="apply the database migrations")
    p.set_defaults(handler=_db_upgrade)

    proc = sub.add_parser("process", help="run, show and deploy processes").add_subparsers(
        required=True, metavar="ACTION"
    )
    source_help = "module:attribute of a Process, a .yaml file, or the name of a deployed process"
    p = proc.add_parser("run", help="start a run, follow it, answer the events it waits for")
    p.add_argument("source", help=source_help)
    p.add_argument("--event", required=True, help="input event that starts the process")
    p.add_argument("--data", default="null", help="JSON data of the start event")
    p.add_argument("--id", dest="key", help="run key: the workflow ID becomes process-<name>-<key>")
    p.set_defaults(handler=_process_run)
    p = proc.add_parser("send", help="send an event to a running process")
    p.add_argument("run_id", metavar="RUN_ID", help="the run's workflow ID (process-<name>-<key>)")
    p.add_argument("--event", required=True, help="input event to send")
    p.add_argument("--data", default="null", help="JSON data of the event")
    p.set_defaults(handler=_process_send)
    p = proc.add_parser("show", help="validate a process and print it as Mermaid")
    p.add_argument("source", help=source_help)
    p.set_defaults(handler=_process_show)
    p = proc.add_parser("deploy", help="store a new version of a process definition")
    p.add_argument("file", type=Path, help="the definition, as YAML")
    p.set_defaults(handler=_process_deploy)

    add_agent_commands(sub)
    add_orchestrate_command(sub)
    add_keys_commands(sub)
    add_security_commands(sub)
    add_api_command(sub)
    add_privacy_commands(sub)
    add_audit_commands(sub)
    add_compliance_commands(sub)
    add_pii_commands(sub)
    _name_commands(parser)
    return parser


def _name_commands(parser: argparse.ArgumentParser) -> None:
    """Give every command its full name (`baton process run`) as `args.command`."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                command.set_defaults(command=command.prog)
                _name_commands(command)


# -- process ------------------------------------------------------------------------------------


async def resolve_process(source: str, settings: BatonSettings) -> Process:
    """A process from `module:attribute`, a YAML file, or the deployed definitions by name."""
    if source.endswith((".yaml", ".yml")):
        return load_process(Path(source), settings.step_modules)
    if ":" in source:
        module_name, _, attribute = source.partition(":")
        try:
            value: Any = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as e:
            raise UsageError(f"cannot load {source!r}: {e}") from e
        if not isinstance(value, Process):
            raise UsageError(f"{source!r} is a {type(value).__name__}, not a built Process")
        return value
    engine = engine_from_settings(settings)
    try:
        return await DefinitionStore(Schema(engine)).load_process(source, settings)
    finally:
        await engine.dispose()


async def _process_show(args: argparse.Namespace) -> int:
    process = await resolve_process(args.source, get_settings())
    console.print(f"[green]✓[/] {process.name} is valid ({len(process.compiled.steps)} steps)")
    console.print(Syntax(process.to_mermaid(), "text", theme="ansi_dark"))
    return 0


async def _process_deploy(args: argparse.Namespace) -> int:
    settings = get_settings()
    process = load_process(args.file, settings.step_modules)
    engine = engine_from_settings(settings)
    try:
        await upgrade(engine)
        version = await DefinitionStore(Schema(engine)).deploy(process.to_definition())
    finally:
        await engine.dispose()
    console.print(f"[green]✓[/] deployed {process.name} version {version}; new runs use it")
    return 0


async def _process_run(args: argparse.Namespace) -> int:
    from baton.starter.cli.progress import NoMoreAnswers, ask_person, follow_run, print_output
    from baton.starter.client import BatonClient

    settings = get_settings()
    data = _json_option(args.data)
    process = await resolve_process(args.source, settings)
    baton = await BatonClient.connect(settings)
    run = await baton.start_process(process, args.event, data, key=args.key)
    try:
        result = await follow_run(run, console, ask_person(console))
    except NoMoreAnswers:
        console.print(
            f"[yellow]No more input: run {run.id} goes on waiting.[/] Answer it with "
            f"'baton process send {run.id} --event <name> --data <json>'."
        )
        return 1
    print_output(console, result)
    console.print(f"[bold]Temporal UI[/] {run.ui_url}")
    return 0


async def _process_send(args: argparse.Namespace) -> int:
    from baton.starter.client import BatonClient

    data = _json_option(args.data)
    baton = await BatonClient.connect(get_settings())
    accepted = await baton.get_run(args.run_id).send_event(args.event, data)
    console.print(f"[green]✓[/] sent {accepted.name} to {args.run_id} ({accepted.deliveries} delivery)")
    return 0


def _json_option(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise UsageError(f"--data is not JSON: {e.msg} at column {e.colno}") from e
    except RecursionError:
        raise UsageError("--data is nested too deeply") from None


# -- servers ------------------------------------------------------------------------------------


async def _db_upgrade(args: argparse.Namespace) -> int:
    settings = get_settings()
    engine = engine_from_settings(settings)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    console.print("[green]✓[/] database is up to date")
    return 0


async def _worker(args: argparse.Namespace) -> int:
    from baton.starter.devserver import serving
    from baton.telemetry.metrics import metrics_app
    from baton.temporal import connect, ensure_search_attributes
    from baton.workers.worker import running_workers

    settings = get_settings()
    client = await connect(settings)
    try:
        await ensure_search_attributes(client)
    except RPCError as e:  # e.g. Temporal Cloud, where workers may not use the operator API
        err.print(
            f"[yellow]warning:[/] could not register search attributes ({e.message}); "
            "register BatonProcess (Keyword) in the namespace, or runs will not start"
        )
    queues = args.queues or settings.all_queues
    async with running_workers(client, settings, queues) as workers, contextlib.AsyncExitStack() as stack:
        served = ", ".join(w.task_queue for w in workers)
        console.print(f"worker serving {served} on {settings.temporal_address or 'the configured Temporal'}")
        if settings.metrics_port is not None:
            url = await stack.enter_async_context(
                serving(
                    metrics_app(settings, client),
                    settings.metrics_host,
                    settings.metrics_port,
                    "metrics endpoint",
                )
            )
            console.print(f"metrics: {url}/metrics, health: {url}/healthz, {url}/readyz")
        await until_stopped()
    return 0


async def _dev(args: argparse.Namespace) -> int:
    from baton.starter.cli.demo import start_api
    from baton.starter.client import BatonClient
    from baton.starter.devserver import GRPC_PORT, dev_server_with_codec
    from baton.temporal import connect_embedded, settings_converter
    from baton.workers.worker import running_workers

    settings = get_settings()
    await _db_upgrade(args)
    # One converter, so the codec server, the client and the workers share one keyring and one
    # data-subject registry.
    converter = settings_converter(settings, engine_from_settings(settings))
    async with dev_server_with_codec(settings, converter) as codec_url:
        client = await connect_embedded(settings, GRPC_PORT, converter)
        async with running_workers(client, settings), contextlib.AsyncExitStack() as stack:
            baton = BatonClient(client, settings)
            stack.push_async_callback(baton.close)
            console.print(
                f"[bold]Temporal UI[/]  {settings.temporal_ui_url} (payloads decrypted by the codec server)"
            )
            console.print(f"[bold]Codec server[/] {codec_url}")
            await start_api(stack, console, settings, baton)
            console.print("[bold]Temporal gRPC[/] 127.0.0.1:7233 · worker on all queues · Ctrl-C stops")
            await until_stopped()
    console.print("stopped")
    return 0


async def _demo(args: argparse.Namespace) -> int:
    from baton.starter.cli.demo import run_demo

    return await run_demo(console, get_settings())

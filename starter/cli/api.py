"""`baton api`: the HTTP API, served until Ctrl-C."""

from __future__ import annotations

import argparse

from rich.console import Console

from baton.settings import get_settings
from baton.starter.cli.terminal import until_stopped
from baton.starter.devserver import API_PORT, api_server

console = Console()


def add_api_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("api", help="serve the HTTP API (OpenAPI at /docs) until Ctrl-C")
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=API_PORT, help=f"the port (default {API_PORT})")
    p.set_defaults(handler=_api, serving=True)


async def _api(args: argparse.Namespace) -> int:
    async with api_server(get_settings(), args.host, args.port) as url:
        console.print(f"[bold]Baton API[/] {url} · docs {url}/docs · Ctrl-C stops")
        await until_stopped()
    return 0

"""`baton token` (the dev issuer) and `baton codec-server`."""

from __future__ import annotations

import argparse

from rich.console import Console

from baton.security.dev_issuer import DevIssuer
from baton.settings import get_settings
from baton.starter.cli.terminal import until_stopped
from baton.starter.cli.usage import UsageError

console = Console()


def add_security_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "token",
        help="print a token from the dev issuer (embedded default; production uses an OIDC authority)",
    )
    p.add_argument("--sub", required=True, help="who the token is for (a user name, not personal data)")
    p.add_argument("--roles", default="", help="comma-separated roles, e.g. Admin")
    p.add_argument("--ttl", type=int, default=3600, help="seconds until it expires (default 3600)")
    p.set_defaults(handler=_token)

    p = sub.add_parser("codec-server", help="serve the codec server for the Temporal UI until Ctrl-C")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8234)
    p.set_defaults(handler=_codec_server, serving=True)


async def _token(args: argparse.Namespace) -> int:
    if args.ttl <= 0:
        raise UsageError("--ttl must be a positive number of seconds")
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    print(DevIssuer.load(get_settings()).issue(args.sub, roles, args.ttl))
    return 0


async def _codec_server(args: argparse.Namespace) -> int:
    from baton.starter.devserver import codec_server, ui_env_file

    settings = get_settings()
    async with codec_server(settings, args.host, args.port) as codec:
        console.print(f"[bold]Codec server[/] {codec.url} · Ctrl-C stops")
        if codec.dev_endpoint is None:
            await until_stopped()
            return 0
        # The dev endpoint carries a capability: handed over in a file only we can read, never
        # printed or put on a command line.
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with ui_env_file(settings.data_dir, codec.dev_endpoint) as env_file:
            console.print(
                f"For a local UI (dev issuer): temporal server start-dev --env-file {env_file}",
                soft_wrap=True,
            )
            await until_stopped()
    return 0

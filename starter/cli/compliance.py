"""`baton compliance install`: the compliance queue's schedules and audit witness, once."""

from __future__ import annotations

import argparse

from rich.console import Console

from baton.compliance import retention_sweep_schedule_id, sweep_schedule_id, witness_workflow_id
from baton.settings import get_settings
from baton.temporal import connect
from baton.workers.worker import install_compliance

console = Console()


def add_compliance_commands(sub: argparse._SubParsersAction) -> None:
    compliance = sub.add_parser("compliance", help="retention and audit machinery").add_subparsers(
        required=True, metavar="ACTION"
    )
    p = compliance.add_parser(
        "install",
        help="create the retention and stored-payload sweep schedules and the audit witness (idempotent)",
        description="Workers serving the compliance queue do this as they start; run it in a deploy "
        "step to have them before any worker has started.",
    )
    p.set_defaults(handler=_install)


async def _install(args: argparse.Namespace) -> int:
    settings = get_settings()
    client = await connect(settings)
    await install_compliance(client, settings)
    queue = settings.compliance_queue
    console.print(
        f"[green]✓[/] schedules {retention_sweep_schedule_id(queue)} (daily) and {sweep_schedule_id(queue)} "
        f"(hourly), audit witness {witness_workflow_id(queue)}: in place"
    )
    return 0

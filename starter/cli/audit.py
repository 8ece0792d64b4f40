"""`baton audit verify|tail`: the hash-chained audit trail, checked and read."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.markup import escape
from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError

from baton.compliance import AuditAnchor, AuditLog, witness_workflow_id
from baton.persistence.db import engine_from_settings
from baton.persistence.schema import Schema
from baton.settings import BatonSettings, get_settings
from baton.starter.client import BatonClient

console = Console()
err = Console(stderr=True)


def add_audit_commands(sub: argparse._SubParsersAction) -> None:
    audit = sub.add_parser("audit", help="the audit trail").add_subparsers(required=True, metavar="ACTION")
    p = audit.add_parser(
        "verify",
        help="check every entry's hash, the chain's links, and the anchors kept in Temporal",
        description="Exit status 0 when the chain is whole, 1 naming the first broken link, 2 when the "
        "audit witness cannot be asked for its anchors (--no-anchors checks the chain alone).",
    )
    p.add_argument(
        "--no-anchors", action="store_true", help="do not ask Temporal for the anchors (offline check)"
    )
    p.set_defaults(handler=_verify)
    p = audit.add_parser("tail", help="the latest entries, oldest first")
    p.add_argument("-n", type=int, default=20, help="how many (default 20)")
    p.add_argument("--action", help="only entries of this action, e.g. payload.decode")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(handler=_tail)


async def _verify(args: argparse.Namespace) -> int:
    settings = get_settings()
    anchors = [] if args.no_anchors else await _anchors(settings)
    if anchors is None:
        return 2
    engine = engine_from_settings(settings)
    try:
        result = await AuditLog(Schema(engine)).verify(anchors)
    finally:
        await engine.dispose()
    if result.broken is not None:
        err.print(f"[red]audit chain broken at entry {result.broken.seq}:[/] {escape(result.broken.problem)}")
        return 1
    console.print(
        f"[green]✓[/] {result.entries} entries verified"
        + (f", against {result.anchors} anchors kept in Temporal" if result.anchors else "")
    )
    return 0


async def _anchors(settings: BatonSettings) -> list[AuditAnchor] | None:
    """The witness's anchors; None (said on stderr) when Temporal or the witness cannot answer:
    a chain checked alone passes a consistent rewrite of the whole table, so that is not a pass."""
    witness = witness_workflow_id(settings.compliance_queue)
    try:
        baton = await BatonClient.connect(settings)
        try:
            return await baton.audit_anchors()
        finally:
            await baton.close()
    except (RPCError, RuntimeError, WorkflowQueryFailedError) as e:
        err.print(
            f"[red]no anchors from the audit witness {witness}[/] ({escape(str(e))}). Without them a "
            "consistent rewrite of the whole table would pass; start a compliance worker, or check the "
            "chain alone with --no-anchors"
        )
        return None


async def _tail(args: argparse.Namespace) -> int:
    engine = engine_from_settings(get_settings())
    try:
        records = await AuditLog(Schema(engine)).tail(args.n, args.action)
    finally:
        await engine.dispose()
    for record in records:
        if args.json:
            print(json.dumps(record.model_dump(mode="json"), sort_keys=True))
            continue
        where = f" {record.resource}" if record.resource else ""
        console.print(
            f"{record.seq:>6} {record.at:%Y-%m-%d %H:%M:%S} {escape(record.actor) or '-'} "
            f"[bold]{record.action}[/]{escape(where)} {escape(json.dumps(record.detail))}"
        )
    return 0

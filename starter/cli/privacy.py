"""`baton privacy ...`: a data subject's processing records, retention and erasure."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError

from baton.compliance import (
    BATON_RETENTION_DUE,
    DEFAULT_RETENTION_DAYS,
    SUBJECT_RETENTION_WORKFLOW,
    LegalBasis,
    Processing,
    RequestKind,
    open_export,
)
from baton.persistence.db import engine_from_settings
from baton.persistence.schema import Schema
from baton.persistence.subjects import ERASURE_POLL_SECONDS, Erasure, SubjectKeys
from baton.security.keys import DecryptionError, LiveKeyring, key_provider
from baton.settings import get_settings
from baton.starter.cli.usage import UsageError
from baton.starter.client import BatonClient

SUBJECT_HELP = "the identifier the runs were started with (data_subject=...); compared case-insensitively"
console = Console()
err = Console(stderr=True)


def add_privacy_commands(sub: argparse._SubParsersAction) -> None:
    privacy = sub.add_parser("privacy", help="data subjects' personal data").add_subparsers(
        required=True, metavar="ACTION"
    )
    p = privacy.add_parser(
        "erase",
        help="delete a data subject's key: every payload of theirs in Temporal becomes unreadable",
    )
    p.add_argument("subject", help=SUBJECT_HELP)
    p.set_defaults(handler=_erase)

    p = privacy.add_parser("record", help="record processing of a data subject's data (outside a run)")
    p.add_argument("subject", help=SUBJECT_HELP)
    p.add_argument("--purpose", required=True, help="why the data is processed")
    p.add_argument(
        "--legal-basis", required=True, choices=[b.value for b in LegalBasis], help="GDPR art. 6(1) basis"
    )
    p.add_argument("--category", default="personal data", help="what kind of data (default: personal data)")
    p.add_argument(
        "--retention-days",
        type=int,
        default=DEFAULT_RETENTION_DAYS,
        help="kept this long after the last processing",
    )
    p.set_defaults(handler=_record)

    p = privacy.add_parser("records", help="a data subject's processing records")
    p.add_argument("subject", help=SUBJECT_HELP)
    p.set_defaults(handler=_records)

    p = privacy.add_parser("due", help="data subjects whose data falls due for deletion before a date")
    p.add_argument("--before", type=_date, default=None, help="YYYY-MM-DD (default: 30 days from now)")
    p.set_defaults(handler=_due)

    p = privacy.add_parser(
        "request",
        help="file a data-subject request (access: an export of their data; erase: everything of "
        "theirs), answered within a month, and wait for it",
    )
    p.add_argument("kind", choices=["access", "erase", "rectify"])
    p.add_argument("subject", help=SUBJECT_HELP)
    p.add_argument("--to", dest="corrected", help="rectify: the subject's correct identifier")
    p.add_argument("--note", default="", help="rectify: what was wrong (audited)")
    p.set_defaults(handler=_request)

    p = privacy.add_parser("export", help="print an access request's export (JSON) from its sealed file")
    p.add_argument("path", type=Path, help="the export file an access request wrote")
    p.set_defaults(handler=_export)

    for name, help_text in (
        ("hold", "place a legal hold: nothing of the subject is deleted until released"),
        ("release", "lift the legal hold; what fell due meanwhile is deleted"),
        ("extend", "keep the subject's records longer"),
        ("shorten", "keep the subject's records less long; what falls due is deleted at once"),
    ):
        p = privacy.add_parser(name, help=help_text)
        p.add_argument("subject", help=SUBJECT_HELP)
        if name == "hold":
            p.add_argument("--reason", required=True, help="why (a case number, say); audited")
        if name in ("extend", "shorten"):
            p.add_argument("--days", type=int, required=True, help="how many days")
        p.set_defaults(handler=_retention_change, change=name)


async def _erase(args: argparse.Namespace) -> int:
    settings = get_settings()
    engine = engine_from_settings(settings)
    try:
        subjects = SubjectKeys(Schema(engine), LiveKeyring(key_provider(settings)))
        outcome = await subjects.erase(args.subject)
    finally:
        await engine.dispose()
    if outcome is Erasure.ERASED:
        console.print(
            "[green]✓[/] erased: the subject's key is deleted; their payloads can no longer be read "
            f"(running workers stop using it within {ERASURE_POLL_SECONDS:g} s)"
        )
        return 0
    if outcome is Erasure.ALREADY_ERASED:
        console.print("nothing to erase: this subject was erased before; no run of theirs is readable")
        return 0
    err.print(
        "[red]no such data subject:[/] no run was ever registered for this identifier "
        "(compared after normalisation: Unicode NFKC, surrounding spaces removed, case folded); "
        "check the identifier the runs were started with"
    )
    return 1


async def _record(args: argparse.Namespace) -> int:
    try:
        processing = Processing(
            purpose=args.purpose,
            legal_basis=args.legal_basis,
            data_category=args.category,
            retention_days=args.retention_days,
        )
    except ValidationError as e:
        raise UsageError(
            "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
        ) from None
    async with _client() as baton:
        record = await baton.record_processing(args.subject, processing)
    console.print(
        f"[green]✓[/] recorded: {record.purpose} ({record.legal_basis}), due {record.due_at:%Y-%m-%d}"
    )
    return 0


async def _records(args: argparse.Namespace) -> int:
    async with _client() as baton:
        ref = baton.subjects.ref(args.subject)
        records = await baton.records.of_subject(ref)
        hold = await baton.records.hold_of(ref)
    if not records:
        console.print("no processing records for this subject")
    for r in records:
        console.print(
            f"{r.purpose} · {r.legal_basis} · {r.data_category} · recorded {r.recorded_at:%Y-%m-%d} · "
            f"due {r.due_at:%Y-%m-%d} · {len(r.runs)} runs"
        )
    if hold is not None:
        console.print(
            f"[yellow]on legal hold[/] since {hold.placed_at:%Y-%m-%d} by {escape(hold.placed_by)}: "
            f"{escape(hold.reason)}"
        )
    return 0


async def _due(args: argparse.Namespace) -> int:
    before = args.before or datetime.now(UTC) + timedelta(days=30)
    async with _client() as baton:
        query = (
            f"WorkflowType = '{SUBJECT_RETENTION_WORKFLOW}' AND ExecutionStatus = 'Running' "
            f"AND {BATON_RETENTION_DUE.name} < '{before.isoformat()}'"
        )
        found = [w async for w in baton.temporal.list_workflows(query)]
    found.sort(key=lambda w: w.typed_search_attributes.get(BATON_RETENTION_DUE) or before)
    for w in found:
        due = w.typed_search_attributes.get(BATON_RETENTION_DUE)
        console.print(f"{due:%Y-%m-%d %H:%M} UTC  {w.id}" if due else w.id)
    console.print(f"{len(found)} data subjects with data due before {before:%Y-%m-%d}")
    return 0


async def _retention_change(args: argparse.Namespace) -> int:
    async with _client() as baton:
        retention = baton.retention(args.subject)
        try:
            match args.change:
                case "hold":
                    state = await retention.hold(args.reason)
                case "release":
                    state = await retention.release()
                case "extend":
                    state = await retention.extend(args.days)
                case _:
                    state = await retention.shorten(args.days)
        except ValidationError as e:
            raise UsageError("; ".join(x["msg"] for x in e.errors())) from None
        except ValueError as e:
            raise UsageError(str(e)) from None
        except LookupError as e:
            err.print(f"[red]{escape(str(e))}[/]")
            return 1
    due = f"next due {state.next_due:%Y-%m-%d}" if state.next_due else "nothing due"
    console.print(
        f"[green]✓[/] {args.change}: {state.records} records, {due}"
        + (", on legal hold" if state.held else "")
    )
    return 0


@contextlib.asynccontextmanager
async def _client() -> AsyncIterator[BatonClient]:
    baton = await BatonClient.connect(get_settings())
    try:
        yield baton
    finally:
        await baton.close()


def _date(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


async def _request(args: argparse.Namespace) -> int:
    kind = {"access": RequestKind.ACCESS, "erase": RequestKind.ERASURE, "rectify": RequestKind.RECTIFICATION}[
        args.kind
    ]
    if (kind is RequestKind.RECTIFICATION) != (args.corrected is not None):
        raise UsageError("--to names the correct identifier of a rectification (and only of one)")
    async with _client() as baton:
        handle = await baton.subject_request(kind, args.subject, corrected=args.corrected, note=args.note)
        console.print(f"request {handle.id} filed; waiting for the compliance worker…")
        try:
            result = await handle.result()
        except WorkflowFailureError as e:
            cause = e.cause.cause if isinstance(e.cause, ActivityError) else e.cause
            err.print(f"[red]request {handle.id} failed:[/] {escape(str(cause))}")
            return 1
    if result.kind is RequestKind.ACCESS:
        console.print(
            f"[green]✓[/] export of {result.runs} runs written to {result.export_path} "
            f"(SHA-256 {result.export_sha256}); read it with 'baton privacy export {result.export_path}'"
        )
        return 0
    if result.rectified is not None:
        console.print(
            f"[green]✓[/] rectified: {result.rectified.records} records and {result.rectified.keys} keys "
            "now under the corrected identifier (run histories are unchanged)"
        )
        return 0
    deleted = result.deleted
    console.print(
        f"[green]✓[/] erased: {deleted.records if deleted else 0} records, "
        f"{deleted.stored_payloads if deleted else 0} stored payloads, key "
        f"{'deleted' if deleted and deleted.key_erased else 'already gone'}; "
        f"{result.payloads_checked} payloads of {result.runs} runs read back, {result.payloads_readable} readable"
    )
    return 0 if result.payloads_readable == 0 else 1


async def _export(args: argparse.Namespace) -> int:
    try:
        bundle = open_export(args.path, LiveKeyring(key_provider(get_settings())).keyring)
    except OSError as e:
        raise UsageError(f"cannot read {args.path}: {e.strerror}") from None
    except (DecryptionError, ValueError) as e:
        raise UsageError(f"{args.path} is not an export of this deployment's keys: {e}") from None
    print(json.dumps(bundle, indent=2, sort_keys=True))
    return 0

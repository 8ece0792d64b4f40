"""`baton privacy erase SUBJECT`: crypto-shredding of one data subject's payloads."""

from __future__ import annotations

import argparse

from rich.console import Console

from baton.persistence.db import engine_from_settings
from baton.persistence.schema import Schema
from baton.persistence.subjects import ERASURE_POLL_SECONDS, Erasure, SubjectKeys
from baton.security.keys import LiveKeyring, key_provider
from baton.settings import get_settings

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
    p.add_argument(
        "subject",
        help="the identifier the runs were started with (data_subject=...); compared case-insensitively",
    )
    p.set_defaults(handler=_erase)


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

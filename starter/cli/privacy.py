"""`baton privacy erase SUBJECT`: crypto-shredding of one data subject's payloads."""

from __future__ import annotations

import argparse

from rich.console import Console

from baton.persistence.db import engine_from_settings
from baton.persistence.schema import Schema
from baton.persistence.subjects import SubjectKeys
from baton.security.keys import key_provider
from baton.settings import get_settings

console = Console()


def add_privacy_commands(sub: argparse._SubParsersAction) -> None:
    privacy = sub.add_parser("privacy", help="data subjects' personal data").add_subparsers(
        required=True, metavar="ACTION"
    )
    p = privacy.add_parser(
        "erase",
        help="delete a data subject's key: every payload of theirs in Temporal becomes unreadable",
    )
    p.add_argument("subject", help="the identifier the runs were started with (data_subject=...)")
    p.set_defaults(handler=_erase)


async def _erase(args: argparse.Namespace) -> int:
    settings = get_settings()
    engine = engine_from_settings(settings)
    try:
        subjects = SubjectKeys(Schema(engine), key_provider(settings))
        erased = await subjects.erase(args.subject)
    finally:
        await engine.dispose()
    if erased:
        console.print(
            "[green]✓[/] erased: the subject's key is deleted; their payloads can no longer be read"
        )
    else:
        console.print("nothing to erase: no key for that subject (never seen, or erased already)")
    return 0

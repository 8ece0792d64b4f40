"""`baton keys list|rotate`: the keys that encrypt payloads. Key material is never printed."""

from __future__ import annotations

import argparse

from rich.console import Console

from baton.compliance.audit import AuditEntry, AuditLog, local_actor
from baton.persistence.db import engine_from_settings
from baton.persistence.schema import Schema
from baton.security.keys import RELOAD_SECONDS, FileKeyProvider, KeysManagedElsewhere, key_provider
from baton.settings import get_settings
from baton.starter.cli.usage import UsageError

console = Console()


def add_keys_commands(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("keys", help="the payload encryption keys").add_subparsers(
        required=True, metavar="ACTION"
    )
    p = keys.add_parser("list", help="key IDs, and which one encrypts new payloads")
    p.set_defaults(handler=_list)
    p = keys.add_parser(
        "rotate",
        help="add a fresh key and make it current; old keys stay to read old histories",
        description="New payloads use the new key at once here, and within "
        f"{RELOAD_SECONDS:g} s in running workers, clients and codec servers on this machine.",
    )
    p.set_defaults(handler=_rotate)


async def _list(args: argparse.Namespace) -> int:
    provider = key_provider(get_settings())
    if isinstance(provider, FileKeyProvider) and not provider.path.exists():
        # Listing must not create a keyring: that would make a second one for a mistyped folder.
        console.print(f"no keyring at {provider.path} yet: the first run (or `baton keys rotate`) creates it")
        return 0
    keyring = provider.load()
    for key_id in keyring.keys:
        console.print(f"{key_id}{'  (current)' if key_id == keyring.current else ''}")
    return 0


async def _rotate(args: argparse.Namespace) -> int:
    settings = get_settings()
    provider = key_provider(settings)
    try:
        keyring = provider.rotate()
    except KeysManagedElsewhere as e:
        raise UsageError(str(e)) from None
    engine = engine_from_settings(settings)
    try:
        entry = AuditEntry(actor=local_actor(), action="key.rotate", resource=f"key:{keyring.current}")
        await AuditLog(Schema(engine)).append(entry)
    finally:
        await engine.dispose()
    console.print(f"[green]✓[/] new current key {keyring.current}; {len(keyring.keys)} keys in all")
    return 0

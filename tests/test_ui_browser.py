"""A real browser on the Temporal UI of `baton dev`'s setup: the payloads Temporal holds
encrypted, and those kept out of band, read as plain text for the dev user, with nothing to set
up in the browser; the UI's codec endpoint is on no command line."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from baton.examples.document_generation.process import process as document_generation
from baton.persistence.db import create_engine
from baton.settings import BatonSettings
from baton.starter.client import BatonClient
from baton.starter.devserver import GRPC_PORT, UI_PORT, dev_server_with_codec, port_open
from baton.temporal import connect_embedded, ensure_search_attributes, settings_converter
from baton.workers.worker import running_workers
from tests.browser import chromium
from tests.steps import upper_only

ARTIFACTS = Path(__file__).parents[1] / "test-artifacts"
PRODUCT = "Zebracorn Ledger"
MANUAL = "Zebracorn manual"
"""Starts a document far above the 32 KB offload threshold (random text: compression cannot
bring it under), which Temporal's history holds as a reference to the payload store."""


def command_lines() -> list[str]:
    """Every process's command line, as any local user can read it (`ps`)."""
    lines = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            lines.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:  # the process ended meanwhile
            continue
    return lines


async def test_the_ui_shows_decrypted_payloads_to_a_signed_in_admin(
    settings: BatonSettings, tmp_path: Path
) -> None:
    if port_open("127.0.0.1", GRPC_PORT):
        pytest.fail("port 7233 is taken by another Temporal; this test runs Baton's dev setup on it")
    converter = settings_converter(settings, create_engine(settings.resolved_database_url))
    async with dev_server_with_codec(settings, converter):
        client = await connect_embedded(settings, GRPC_PORT, converter)
        await ensure_search_attributes(client)
        async with running_workers(client, settings):
            run = await BatonClient(client, settings).start_process(
                document_generation, "Start", {"name": PRODUCT}
            )
            await run.send_event("ApprovalReceived", {"approved": True, "comment": "ship it"})
            await run.result()
            document = f"{MANUAL}: " + base64.b64encode(secrets.token_bytes(48 * 1024)).decode()
            large = await BatonClient(client, settings).start_process(
                upper_only("LargeInput").build(["tests"]), "Start", document
            )
            await large.result()

        async with chromium(tmp_path / "profile") as page:
            await page.goto(run.ui_url)
            # Shown encrypted at first; decrypted once the UI's codec calls come back.
            await page.goto(run.ui_url)
            await page.wait_for(f"document.body.innerText.includes('{PRODUCT}')")
            await page.screenshot(ARTIFACTS / "ui-decrypted.png")
            await page.goto(large.ui_url)
            # Its result, the document upper-cased, is kept out of band too: shown, not its reference.
            await page.wait_for(f"document.body.innerText.includes('{MANUAL.upper()}')")
            assert not await page.evaluate("document.body.innerText.includes('claimData')")
            await page.screenshot(ARTIFACTS / "ui-offloaded-decrypted.png")

        async with httpx.AsyncClient() as http:
            ui = (await http.get(f"http://127.0.0.1:{UI_PORT}/api/v1/settings")).json()
        capability = ui["Codec"]["Endpoint"].rsplit("/", 1)[1]
        assert len(capability) >= 32 and not any(capability in line for line in command_lines())
        assert not list(settings.data_dir.glob("ui-codec-*"))  # the hand-over file is gone

    engine = create_engine(settings.resolved_database_url)
    try:
        async with engine.connect() as conn:
            audited = (
                await conn.execute(
                    sa.text("SELECT actor, workflow_id FROM audit_events WHERE action = 'payload.decode'")
                )
            ).all()
    finally:
        await engine.dispose()
    assert {("dev", run.id), ("dev", large.id)} <= {tuple(row) for row in audited}
    assert (ARTIFACTS / "ui-decrypted.png").stat().st_size > 10_000

"""A real browser on the Temporal UI of `baton dev`'s setup: the payloads Temporal holds
encrypted read as plain text for the dev user, with nothing to set up in the browser."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from baton.persistence.db import create_engine
from baton.settings import BatonSettings
from baton.temporal import connect_embedded, ensure_search_attributes
from examples.document_generation.process import process as document_generation
from starter.client import BatonClient
from starter.devserver import GRPC_PORT, dev_server_with_codec, port_open
from tests.browser import chromium
from workers.worker import running_workers

ARTIFACTS = Path(__file__).parents[1] / "test-artifacts"
PRODUCT = "Zebracorn Ledger"


async def test_the_ui_shows_decrypted_payloads_to_a_signed_in_admin(
    settings: BatonSettings, tmp_path: Path
) -> None:
    if port_open("127.0.0.1", GRPC_PORT):
        pytest.fail("port 7233 is taken by another Temporal; this test runs Baton's dev setup on it")
    async with dev_server_with_codec(settings):
        client = await connect_embedded(settings, GRPC_PORT)
        await ensure_search_attributes(client)
        async with running_workers(client, settings):
            run = await BatonClient(client, settings).start_process(
                document_generation, "Start", {"name": PRODUCT}
            )
            await run.send_event("ApprovalReceived", {"approved": True, "comment": "ship it"})
            await run.result()

        async with chromium(tmp_path / "profile") as page:
            await page.goto(run.ui_url)
            # Shown encrypted at first; decrypted once the UI's codec calls come back.
            await page.goto(run.ui_url)
            await page.wait_for(f"document.body.innerText.includes('{PRODUCT}')")
            await page.screenshot(ARTIFACTS / "ui-decrypted.png")

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
    assert ("dev", run.id) in [tuple(row) for row in audited]
    assert (ARTIFACTS / "ui-decrypted.png").stat().st_size > 10_000

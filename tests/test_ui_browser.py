"""A real browser on the Temporal UI of `baton dev`'s setup: the payloads Temporal holds
encrypted read as plain text for a signed-in user with a decrypting role."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from baton.persistence.db import create_engine
from baton.security.dev_issuer import DevIssuer
from baton.settings import BatonSettings
from baton.temporal import connect_embedded, ensure_search_attributes
from examples.document_generation.process import process as document_generation
from starter.client import BatonClient
from starter.devserver import GRPC_PORT, codec_server, dev_server, port_open
from tests.browser import chromium
from workers.worker import running_workers

ARTIFACTS = Path(__file__).parents[1] / "test-artifacts"
PRODUCT = "Zebracorn Ledger"


async def test_the_ui_shows_decrypted_payloads_to_a_signed_in_admin(
    settings: BatonSettings, tmp_path: Path
) -> None:
    if port_open("127.0.0.1", GRPC_PORT):
        pytest.fail("port 7233 is taken by another Temporal; this test runs Baton's dev setup on it")
    async with dev_server(settings.data_dir), codec_server(settings) as codec_url:
        client = await connect_embedded(settings, GRPC_PORT)
        await ensure_search_attributes(client)
        async with running_workers(client, settings):
            run = await BatonClient(client, settings).start_process(
                document_generation, "Start", {"name": PRODUCT}
            )
            await run.send_event("ApprovalReceived", {"approved": True, "comment": "ship it"})
            await run.result()

        token = DevIssuer.load(settings).issue("dev-admin", ["Admin"])
        async with chromium(tmp_path / "profile") as page:
            await page.goto(f"{codec_url}/login?token={token}")  # the cookie the UI's codec calls carry
            await page.goto("http://127.0.0.1:8233/")
            # The UI's own Codec Server settings: this endpoint, with cross-origin credentials.
            await page.evaluate(
                f"localStorage.setItem('endpoint', JSON.stringify('{codec_url}'));"
                "localStorage.setItem('overrideRemoteCodecConfiguration', 'true');"
                "localStorage.setItem('includeCredentials', 'true');"
            )
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
    assert ("dev-admin", run.id) in [tuple(row) for row in audited]
    assert (ARTIFACTS / "ui-decrypted.png").stat().st_size > 10_000

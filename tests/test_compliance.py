"""The compliance queue: `baton worker --queues baton-compliance` serves the stored-payload sweep,
which its hourly schedule starts and which deletes the payloads of runs whose history is gone."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from temporalio.api.common.v1 import Payload
from temporalio.converter import StorageDriverStoreContext, StorageDriverWorkflowInfo
from temporalio.testing import WorkflowEnvironment

from baton.compliance import SWEEP_EVERY, sweep_schedule_id
from baton.persistence.db import create_engine
from baton.persistence.payloads import SWEEP_GRACE
from baton.security.codec import WORKFLOW
from baton.settings import BatonSettings
from baton.temporal import payload_store, settings_converter
from tests.conftest import baton_worker


async def test_the_compliance_worker_sweeps_payloads_of_expired_runs_on_its_schedule(
    temporal: WorkflowEnvironment, settings: BatonSettings
) -> None:
    settings = settings.model_copy(update={"compliance_queue": f"test-compliance-{uuid.uuid4().hex[:8]}"})
    engine = create_engine(settings.resolved_database_url)
    store = payload_store(settings_converter(settings, engine))
    expired = f"process-Expired-{uuid.uuid4()}"  # a run Temporal holds no history of
    await store.store(
        StorageDriverStoreContext(target=StorageDriverWorkflowInfo(namespace="default", id=expired)),
        [Payload(metadata={WORKFLOW: expired.encode()}, data=b"x" * 5000)],
    )
    async with engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE stored_payloads SET created_at = :at"),
            {"at": datetime.now(UTC) - SWEEP_GRACE - timedelta(minutes=1)},
        )

    address = temporal.client.service_client.config.target_host
    worker = baton_worker(
        address, settings, [settings.compliance_queue], BATON_COMPLIANCE_QUEUE=settings.compliance_queue
    )
    try:
        schedule = temporal.client.get_schedule_handle(sweep_schedule_id(settings.compliance_queue))
        for _ in range(300):  # the worker creates the schedule when it starts
            try:
                described = await schedule.describe()
                break
            except Exception:
                assert worker.poll() is None, "the compliance worker exited"
                await asyncio.sleep(0.1)
        assert described.schedule.spec.intervals[0].every == SWEEP_EVERY
        await schedule.trigger()  # what the hour would do
        for _ in range(300):
            async with engine.connect() as conn:
                left = (await conn.execute(sa.text("SELECT count(*) FROM stored_payloads"))).scalar()
            if left == 0:
                break
            await asyncio.sleep(0.1)
        assert left == 0
        assert worker.poll() is None
    finally:
        worker.terminate()
        worker.wait(30)
        await temporal.client.get_schedule_handle(sweep_schedule_id(settings.compliance_queue)).delete()
        await engine.dispose()

"""The compliance gauges a compliance worker keeps current: the retention backlog and the
data-subject requests open and overdue (the audit chain's result is set as it is checked)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from temporalio.client import Client

from baton.aio import in_background
from baton.telemetry.metrics import RETENTION_DUE, SUBJECT_REQUESTS

from .records import ProcessingRecords
from .requests import DATA_SUBJECT_REQUEST_WORKFLOW, DEADLINE

REFRESH_SECONDS = 60.0
log = logging.getLogger(__name__)


async def refresh(client: Client, records: ProcessingRecords) -> None:
    """Set the gauges from the app database and Temporal's visibility store, now."""
    now = datetime.now(UTC)
    RETENTION_DUE.set(await records.count_due(now))
    running = f"WorkflowType = '{DATA_SUBJECT_REQUEST_WORKFLOW}' AND ExecutionStatus = 'Running'"
    SUBJECT_REQUESTS.labels("open").set((await client.count_workflows(running)).count)
    overdue = f"{running} AND StartTime < '{(now - DEADLINE).isoformat()}'"
    SUBJECT_REQUESTS.labels("overdue").set((await client.count_workflows(overdue)).count)


def kept_current(client: Client, records: ProcessingRecords) -> contextlib.AbstractAsyncContextManager[None]:
    """`refresh` every minute in the background for the length of a block; a failed refresh is
    logged and tried again, the gauges keep their last values meanwhile."""

    async def loop() -> None:
        while True:
            try:
                await refresh(client, records)
            except Exception as e:  # the database or Temporal away for a moment
                log.warning("compliance gauges not refreshed: %s: %s", type(e).__name__, e)
            await asyncio.sleep(REFRESH_SECONDS)

    return in_background(loop())

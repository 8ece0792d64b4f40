"""Activities of the compliance queue: what touches the app database and Temporal for retention."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client

from baton.compliance import SWEEP_STORED_PAYLOADS_ACTIVITY, SweepResult
from baton.persistence.payloads import DatabasePayloadDriver
from baton.temporal import history_exists


class ComplianceActivities:
    def __init__(self, client: Client, store: DatabasePayloadDriver) -> None:
        self.client = client
        self.store = store

    @activity.defn(name=SWEEP_STORED_PAYLOADS_ACTIVITY)
    async def sweep_stored_payloads(self) -> SweepResult:
        """Delete the stored payloads of runs whose history Temporal no longer holds."""
        deleted = await self.store.delete_unreferenced(
            self.client.namespace, lambda run: history_exists(self.client, run)
        )
        return SweepResult(deleted=deleted)

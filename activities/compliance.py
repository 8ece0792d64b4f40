"""Activities of the compliance queue: what touches the app database and Temporal for retention."""

from __future__ import annotations

from datetime import datetime

from temporalio import activity
from temporalio.client import Client, ScheduleActionStartWorkflow

from baton.compliance import (
    ANCHOR_AUDIT_CHAIN_ACTIVITY,
    DELETE_DUE_ACTIVITY,
    HOLD_ACTIVITY,
    RELEASE_ACTIVITY,
    RETENTION_STATE_ACTIVITY,
    SHIFT_ACTIVITY,
    SWEEP_DUE_ACTIVITY,
    SWEEP_GRACE,
    SWEEP_STORED_PAYLOADS_ACTIVITY,
    AnchorResult,
    AuditAnchor,
    AuditLog,
    DeleteDue,
    Deletion,
    ProcessingRecords,
    RetentionState,
    SweepReport,
    SweepResult,
)
from baton.persistence.payloads import DatabasePayloadDriver
from baton.security.codec import root_run_id
from baton.temporal import history_exists

RETENTION_ACTOR = "baton:retention"
RETENTION_SWEEP_ACTOR = "baton:retention-sweep"
SWEEP_BATCH = 500


class ComplianceActivities:
    def __init__(
        self, client: Client, store: DatabasePayloadDriver, audit: AuditLog, records: ProcessingRecords
    ) -> None:
        self.client = client
        self.store = store
        self.audit = audit
        self.records = records

    @activity.defn(name=RETENTION_STATE_ACTIVITY)
    async def retention_state(self, ref: str) -> RetentionState:
        return await self.records.state(ref)

    @activity.defn(name=DELETE_DUE_ACTIVITY)
    async def delete_due_records(self, due: DeleteDue) -> Deletion:
        return await self.records.delete_due(due.ref, due.now, RETENTION_ACTOR)

    @activity.defn(name=HOLD_ACTIVITY)
    async def retention_hold(self, ref: str, reason: str, actor: str) -> RetentionState:
        return await self.records.hold(ref, reason, actor)

    @activity.defn(name=RELEASE_ACTIVITY)
    async def retention_release(self, ref: str, actor: str) -> RetentionState:
        return await self.records.release(ref, actor)

    @activity.defn(name=SHIFT_ACTIVITY)
    async def retention_shift(self, ref: str, days: int, actor: str) -> RetentionState:
        return await self.records.shift(ref, days, actor)

    @activity.defn(name=SWEEP_DUE_ACTIVITY)
    async def sweep_due_records(self, now: datetime) -> SweepReport:
        """Delete what is past due (by more than the grace period) and was not deleted."""
        report = SweepReport()
        while refs := await self.records.past_due(now - SWEEP_GRACE, limit=SWEEP_BATCH):
            for ref in refs:
                report.deleted += await self.records.delete_due(ref, now, RETENTION_SWEEP_ACTOR)
                report.subjects += 1
                activity.heartbeat(report.subjects)
        return report

    @activity.defn(name=ANCHOR_AUDIT_CHAIN_ACTIVITY)
    async def anchor_audit_chain(self, since: AuditAnchor | None) -> AnchorResult:
        """The audit chain's head, once the entries after `since` (the last anchor) verify."""
        head = await self.audit.head()
        verification = await self.audit.verify(since=since)
        return AnchorResult(head=head, broken=verification.broken)

    @activity.defn(name=SWEEP_STORED_PAYLOADS_ACTIVITY)
    async def sweep_stored_payloads(self) -> SweepResult:
        """Delete the stored payloads that no history and no schedule references any more.

        A payload belongs to its root run: a sub-process's input and result are in its parent's
        history too, and a child's history expires first. A schedule's arguments are stored under
        its action's workflow ID, which no run has (its runs are `<id>-<timestamp>`, and their
        histories start with those arguments): kept while the schedule or one of its runs exists.
        When in doubt, a payload is kept."""
        scheduled = await self._scheduled_workflow_ids()
        known: dict[str, bool] = {}

        async def referenced(workflow_id: str) -> bool:
            root = root_run_id(workflow_id)
            if root not in known:
                known[root] = (
                    root in scheduled
                    or await history_exists(self.client, root)
                    or await self._has_runs_named_after(root)
                )
            return known[root]

        deleted = await self.store.delete_unreferenced(self.client.namespace, referenced)
        return SweepResult(deleted=deleted)

    async def _has_runs_named_after(self, workflow_id: str) -> bool:
        """Whether a run with the ID `<workflow_id>-…` exists, as a schedule's runs are named."""
        if '"' in workflow_id or "\\" in workflow_id:  # not a query we can write: keep its payloads
            return True
        async for _ in self.client.list_workflows(f'WorkflowId STARTS_WITH "{workflow_id}-"', limit=1):
            return True
        return False

    async def _scheduled_workflow_ids(self) -> set[str]:
        ids = set()
        async for listed in await self.client.list_schedules():
            described = await self.client.get_schedule_handle(listed.id).describe()
            if isinstance(described.schedule.action, ScheduleActionStartWorkflow):
                ids.add(described.schedule.action.id)
            activity.heartbeat()
        return ids

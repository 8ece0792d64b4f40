"""Activities of the compliance queue: what touches the app database and Temporal for retention."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from google.protobuf.message import Message
from temporalio import activity
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, ScheduleActionStartWorkflow, WorkflowExecutionStatus, WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from baton.compliance import (
    ACCESS_ACTIVITY,
    ANCHOR_AUDIT_CHAIN_ACTIVITY,
    DELETE_DUE_ACTIVITY,
    ERASURE_ACTIVITY,
    EXPORT_CONTEXT,
    HOLD_ACTIVITY,
    RECTIFICATION_ACTIVITY,
    RELEASE_ACTIVITY,
    REQUEST_AUDIT_ACTIVITY,
    RETENTION_STATE_ACTIVITY,
    RETENTION_SUMMARY,
    SCAN_AUDIT_ACTIVITY,
    SEND_ALERT_ACTIVITY,
    SHIFT_ACTIVITY,
    SUBJECT_RETENTION_WORKFLOW,
    SWEEP_DUE_ACTIVITY,
    SWEEP_GRACE,
    SWEEP_STORED_PAYLOADS_ACTIVITY,
    Alert,
    AnchorResult,
    AuditAnchor,
    AuditEntry,
    AuditLog,
    DeleteDue,
    Deletion,
    LegalHold,
    ProcessingRecords,
    RequestResult,
    RequestStep,
    RetentionInput,
    RetentionState,
    ScanResult,
    SubjectRequest,
    SweepReport,
    SweepResult,
    Thresholds,
    evaluate,
    retention_workflow_id,
)
from baton.persistence.payloads import DatabasePayloadDriver
from baton.security.codec import PayloadDecryptionError, root_run_id
from baton.security.files import write_private
from baton.security.keys import LiveKeyring
from baton.settings import BatonSettings
from baton.telemetry.metrics import ALERTS, AUDIT_CHAIN_VERIFIED
from baton.temporal import encryption_codec, history_exists

log = logging.getLogger(__name__)
ALERT_ACTOR = "baton:alerts"
RETENTION_ACTOR = "baton:retention"
RETENTION_SWEEP_ACTOR = "baton:retention-sweep"
SWEEP_BATCH = 500


class ComplianceActivities:
    def __init__(
        self,
        client: Client,
        store: DatabasePayloadDriver,
        audit: AuditLog,
        records: ProcessingRecords,
        settings: BatonSettings,
    ) -> None:
        self.client = client
        self.store = store
        self.audit = audit
        self.records = records
        self.exports_dir = settings.resolved_exports_dir
        self.webhook = settings.alert_webhook_url
        self.thresholds = Thresholds(
            window_seconds=settings.alert_window_seconds,
            denied=settings.alert_denied,
            decoded_payloads=settings.alert_decoded_payloads,
            erasures=settings.alert_erasures,
            key_operations=settings.alert_key_operations,
        )

    @activity.defn(name=SCAN_AUDIT_ACTIVITY)
    async def scan_audit(self, now: datetime) -> ScanResult:
        """The alerts the audit trail's last window calls for."""
        entries = await self.audit.since(now - timedelta(seconds=self.thresholds.window_seconds))
        return ScanResult(alerts=evaluate(entries, self.thresholds, now), entries=len(entries))

    @activity.defn(name=SEND_ALERT_ACTIVITY)
    async def send_alert(self, alert: Alert) -> None:
        """Post the alert to the webhook; an answer other than 2xx fails the attempt, and
        Temporal tries again. Delivered alerts are counted and audited."""
        log.warning("alert %s: %s", alert.rule.value, alert.message)
        if self.webhook is not None:
            async with httpx.AsyncClient(timeout=10) as http:
                response = await http.post(
                    self.webhook.get_secret_value(), json=alert.model_dump(mode="json")
                )
            if not response.is_success:
                raise ApplicationError(
                    f"the alert webhook answered {response.status_code}", type="AlertNotTaken"
                )
        ALERTS.labels(alert.rule.value).inc()
        await self.audit.append(
            AuditEntry(
                actor=ALERT_ACTOR,
                action=f"alert.{alert.rule.value}",
                resource=alert.principal,
                detail={
                    "count": alert.count,
                    "threshold": alert.threshold,
                    "delivered": self.webhook is not None,
                },
            )
        )

    @activity.defn(name=REQUEST_AUDIT_ACTIVITY)
    async def subject_request_audit(self, step: RequestStep) -> None:
        """Record a step of a data-subject request; a deadline step is logged as a warning too."""
        request = step.request
        await self.audit.append(
            AuditEntry(
                actor=request.actor,
                action=f"subject_request.{step.step}",
                resource=f"subject:{request.subject_ref}",
                detail={"kind": request.kind.value, "request": request.request_id, **step.detail},
            )
        )
        if step.step.startswith("deadline."):
            log.warning("data-subject %s request %s: %s", request.kind.value, request.request_id, step.step)

    @activity.defn(name=ACCESS_ACTIVITY)
    async def subject_access(self, request: SubjectRequest) -> RequestResult:
        """Gather the subject's records, the audit entries about them and their runs' inputs and
        results; seal the bundle with the keyring and write it to the exports folder."""
        ref = request.subject_ref
        records = await self.records.of_subject(ref)
        runs = sorted({run for record in records for run in record.runs})
        entries = await self.audit.about([f"subject:{ref}", *runs])
        executions = [execution for run in runs for execution in await self._executions(run)]
        bundle = {
            "subject_ref": ref,
            "request": request.request_id,
            "generated_at": datetime.now(UTC).isoformat(),
            "processing_records": [r.model_dump(mode="json") for r in records],
            "audit_entries": [e.model_dump(mode="json") for e in entries],
            "runs": [await self._run_data(*execution) for execution in executions],
        }
        sealed = self._keys().keyring.seal(
            json.dumps(bundle, sort_keys=True).encode(), EXPORT_CONTEXT + request.request_id.encode()
        )
        path = self.exports_dir / f"{request.request_id}.sealed"
        write_private(path, sealed)
        return RequestResult(
            kind=request.kind,
            export_path=str(path),
            export_sha256=hashlib.sha256(sealed).hexdigest(),
            runs=len(executions),
        )

    @activity.defn(name=ERASURE_ACTIVITY)
    async def subject_erasure(self, request: SubjectRequest) -> RequestResult:
        """Delete everything of the subject (records, stored payloads, notes, keys), then read
        every payload of every execution of their runs back to check that none decrypts."""
        ref = request.subject_ref
        runs = sorted({run for record in await self.records.of_subject(ref) for run in record.runs})
        executions = [execution for run in runs for execution in await self._executions(run)]
        try:
            deleted = await self.records.delete_all(ref, request.actor, also=request.also_refs)
        except LegalHold as e:
            raise ApplicationError(str(e), type="LegalHold", non_retryable=True) from None
        checked = readable = 0
        for workflow_id, run_id in executions:
            history = await self._history(workflow_id, run_id)
            for payload in _data_payloads(history.events) if history else []:
                checked += 1
                try:
                    await self.client.data_converter.decode([payload])
                except Exception:  # erased: what must happen to every one of them
                    continue
                readable += 1
            activity.heartbeat(checked)
        return RequestResult(
            kind=request.kind,
            runs=len(executions),
            deleted=deleted,
            payloads_checked=checked,
            payloads_readable=readable,
        )

    @activity.defn(name=RECTIFICATION_ACTIVITY)
    async def subject_rectification(self, request: SubjectRequest) -> RequestResult:
        """File the subject under their corrected identifier; their retention follows."""
        if request.corrected_ref is None or request.corrected_ref == request.subject_ref:
            raise ApplicationError(
                "a rectification needs a different, corrected identifier", non_retryable=True
            )
        try:
            rectified = await self.records.rectify(
                request.subject_ref, request.corrected_ref, request.note_id, request.actor
            )
        except LookupError as e:  # the subject was erased since the request was filed
            raise ApplicationError(str(e), type="NoteMissing", non_retryable=True) from None
        with contextlib.suppress(RPCError):  # not running: nothing to stop
            await self.client.get_workflow_handle(retention_workflow_id(request.subject_ref)).terminate(
                "the subject's identifier was rectified"
            )
        await self.client.start_workflow(
            SUBJECT_RETENTION_WORKFLOW,
            RetentionInput(ref=request.corrected_ref),
            id=retention_workflow_id(request.corrected_ref),
            task_queue=activity.info().task_queue,
            start_signal="records_changed",
            static_summary=RETENTION_SUMMARY,
        )
        return RequestResult(kind=request.kind, rectified=rectified)

    async def _executions(self, run: str) -> list[tuple[str, str]]:
        """(workflow ID, run ID) of every execution of a recorded run, oldest first: each run
        under its workflow ID (continued as new, or the ID used again) and its sub-processes'
        (`<run>/<step>/<n>`, and theirs below)."""
        query = f'WorkflowId = "{run}" OR WorkflowId STARTS_WITH "{run}/"'
        found = [e async for e in self.client.list_workflows(query)]
        found.sort(key=lambda e: (e.id.count("/"), e.start_time))
        return [(e.id, e.run_id) for e in found]

    async def _run_data(self, workflow_id: str, run_id: str) -> dict[str, Any]:
        """An execution's inputs (start, signals, updates) and result, decrypted, or why they cannot be."""
        data: dict[str, Any] = {"workflow_id": workflow_id, "run_id": run_id}
        history = await self._history(workflow_id, run_id)
        if history is None:
            return data | {"unavailable": "its history was deleted (namespace retention)"}
        inputs: list[Any] = []
        result: Any = None
        for event in history.events:
            if event.HasField("workflow_execution_completed_event_attributes"):
                [result] = await self._decoded(
                    event.workflow_execution_completed_event_attributes.result.payloads
                )
            else:
                inputs += await self._decoded(_inputs(event))
        return data | {"inputs": inputs, "result": result}

    async def _decoded(self, payloads: Sequence[Payload]) -> list[Any]:
        if not payloads:
            return []
        try:
            return await self.client.data_converter.decode(list(payloads))
        except PayloadDecryptionError as e:
            return [{"unreadable": str(e)} for _ in payloads]

    async def _history(self, workflow_id: str, run_id: str) -> WorkflowHistory | None:
        """An execution's history; None once Temporal's retention deleted it."""
        try:
            return await self.client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND:
                raise
            return None

    def _keys(self) -> LiveKeyring:
        return encryption_codec(self.client.data_converter).keys

    @activity.defn(name=RETENTION_STATE_ACTIVITY)
    async def retention_state(self, ref: str) -> RetentionState:
        return await self.records.state(ref)

    @activity.defn(name=DELETE_DUE_ACTIVITY)
    async def delete_due_records(self, due: DeleteDue) -> Deletion:
        return await self._delete_due(due.ref, due.now, RETENTION_ACTOR)

    async def _delete_due(self, ref: str, now: datetime, actor: str) -> Deletion:
        """Delete what is due, but not under a run still running (its record is postponed)."""
        running = {run for run in await self.records.runs_due(ref, now) if await self._running(run)}
        return await self.records.delete_due(ref, now, actor, running=running)

    async def _running(self, run: str) -> bool:
        """Whether the run's latest execution is still open (its sub-processes end with it)."""
        try:
            described = await self.client.get_workflow_handle(run).describe()
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND:
                raise
            return False
        return described.status == WorkflowExecutionStatus.RUNNING

    @activity.defn(name=HOLD_ACTIVITY)
    async def retention_hold(self, ref: str, reason_note: str, actor: str) -> RetentionState:
        try:
            return await self.records.hold(ref, reason_note, actor)
        except LookupError as e:
            raise ApplicationError(str(e), type="NoteMissing", non_retryable=True) from None

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
                report.deleted += await self._delete_due(ref, now, RETENTION_SWEEP_ACTOR)
                report.subjects += 1
                activity.heartbeat(report.subjects)
        return report

    @activity.defn(name=ANCHOR_AUDIT_CHAIN_ACTIVITY)
    async def anchor_audit_chain(self, since: AuditAnchor | None) -> AnchorResult:
        """The audit chain's head, once the entries after `since` (the last anchor) verify."""
        head = await self.audit.head()
        verification = await self.audit.verify(since=since)
        AUDIT_CHAIN_VERIFIED.set(0 if verification.broken else 1)
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


_NOT_DATA = frozenset({"header", "memo", "search_attributes"})
"""Payload fields of an event that hold Temporal's and Baton's own metadata, not a run's data."""
PATCH_MARKER = "core_patch"
"""The SDK's record of a `workflow.patched` call: the patch's ID, in plain JSON."""


def _data_payloads(messages: Iterable[Message]) -> list[Payload]:
    """Every payload in these history events (or parts of them) that a run's data can be in:
    inputs, results, signals, updates, child and local-activity payloads, failures' details."""
    found: list[Payload] = []
    for message in messages:
        if (
            isinstance(message, HistoryEvent)
            and message.marker_recorded_event_attributes.marker_name == PATCH_MARKER
        ):
            continue
        for field, value in message.ListFields():
            if field.message_type is None or field.name in _NOT_DATA:
                continue
            if field.message_type.GetOptions().map_entry:
                items = list(value.values())
            else:
                items = list(value) if field.is_repeated else [value]
            found += [item for item in items if isinstance(item, Payload)]
            found += _data_payloads(item for item in items if not isinstance(item, Payload))
    return found


def _inputs(event: HistoryEvent) -> list[Payload]:
    """What an event brought into the run from outside: its start input, a signal's, an update's."""
    return [
        *event.workflow_execution_started_event_attributes.input.payloads,
        *event.workflow_execution_signaled_event_attributes.input.payloads,
        *event.workflow_execution_update_accepted_event_attributes.accepted_request.input.args.payloads,
    ]

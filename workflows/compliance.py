"""Compliance workflows: the stored-payload sweep, started by its schedule on the compliance
queue; the audit witness, which anchors the audit chain's head in its history every day; a data
subject's retention, which sleeps until their data is due and deletes it; the retention sweep; and
data-subject requests, answered within their deadline."""

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from baton.compliance import (
        ACCESS_ACTIVITY,
        ANCHOR_AUDIT_CHAIN_ACTIVITY,
        ANCHOR_TIMEOUT,
        ANCHORS_PER_RUN,
        AUDIT_WATCH_WORKFLOW,
        AUDIT_WITNESS_WORKFLOW,
        BATON_RETENTION_DUE,
        DATA_SUBJECT_REQUEST_WORKFLOW,
        DELETE_DUE_ACTIVITY,
        ERASURE_ACTIVITY,
        HOLD_ACTIVITY,
        RECTIFICATION_ACTIVITY,
        RELEASE_ACTIVITY,
        REQUEST_ACTIVITY_TIMEOUT,
        REQUEST_AUDIT_ACTIVITY,
        REQUEST_RETRY,
        RETENTION_CYCLES_PER_RUN,
        RETENTION_STATE_ACTIVITY,
        RETENTION_SWEEP_WORKFLOW,
        SCAN_AUDIT_ACTIVITY,
        SCANS_PER_RUN,
        SEND_ALERT_ACTIVITY,
        SHIFT_ACTIVITY,
        STORED_PAYLOAD_SWEEP_WORKFLOW,
        SUBJECT_RETENTION_WORKFLOW,
        SWEEP_DUE_ACTIVITY,
        SWEEP_RETRY,
        SWEEP_STORED_PAYLOADS_ACTIVITY,
        SWEEP_TIMEOUT,
        WARN_BEFORE,
        Alert,
        AnchorResult,
        AuditAnchor,
        BrokenLink,
        DeleteDue,
        Deletion,
        HoldRequest,
        ReleaseRequest,
        RequestKind,
        RequestResult,
        RequestStep,
        RetentionInput,
        RetentionState,
        Rule,
        ScanResult,
        ShiftRequest,
        SubjectRequest,
        SweepReport,
        SweepResult,
        WatchInput,
        WitnessInput,
        deadline_of,
    )

RETENTION_ACTIVITY_TIMEOUT = timedelta(minutes=5)


# No `from __future__ import annotations`: see workflows/process.py.
@workflow.defn(name=STORED_PAYLOAD_SWEEP_WORKFLOW)
class StoredPayloadSweepWorkflow:
    @workflow.run
    async def run(self) -> SweepResult:
        result = await workflow.execute_activity(
            SWEEP_STORED_PAYLOADS_ACTIVITY,
            start_to_close_timeout=SWEEP_TIMEOUT,
            retry_policy=SWEEP_RETRY,
            result_type=SweepResult,
        )
        workflow.set_current_details(f"deleted {result.deleted} stored payloads of expired runs")
        return result


@workflow.defn(name=AUDIT_WITNESS_WORKFLOW)
class AuditWitnessWorkflow:
    """Wakes every `every_seconds`, verifies what was appended since the last anchor, anchors the
    new head; runs for ever, continuing as new with its anchors (see `baton.compliance.witness`)."""

    def __init__(self) -> None:
        self._anchors: list[AuditAnchor] = []
        self._broken: BrokenLink | None = None

    @workflow.run
    async def run(self, input: WitnessInput) -> None:
        self._anchors = list(input.anchors)
        for _ in range(ANCHORS_PER_RUN):
            result = await workflow.execute_activity(
                ANCHOR_AUDIT_CHAIN_ACTIVITY,
                self._anchors[-1] if self._anchors else None,
                start_to_close_timeout=ANCHOR_TIMEOUT,
                retry_policy=SWEEP_RETRY,
                result_type=AnchorResult,
            )
            await self._record(result)
            await workflow.sleep(timedelta(seconds=input.every_seconds))
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(input.model_copy(update={"anchors": self._anchors}))

    async def _record(self, result: AnchorResult) -> None:
        self._broken = result.broken
        if result.broken is not None:
            # Nothing is anchored past a break: the anchors keep vouching for what came before.
            workflow.set_current_details(
                f"audit chain broken at entry {result.broken.seq}: {result.broken.problem}"
            )
            await send_alert(
                Alert(
                    rule=Rule.AUDIT_BROKEN,
                    count=1,
                    threshold=0,
                    window_seconds=0,
                    at=workflow.now(),
                    message=f"the audit chain does not verify at entry {result.broken.seq}: {result.broken.problem}",
                )
            )
            return
        if not self._anchors or result.head.seq > self._anchors[-1].seq:
            self._anchors.append(result.head)
        last = self._anchors[-1] if self._anchors else result.head
        workflow.set_current_details(
            f"{len(self._anchors)} anchors; the last: entry {last.seq} ({last.hash[:12]}…), "
            f"{last.at:%Y-%m-%d %H:%M} UTC"
        )

    @workflow.query
    def anchors(self) -> list[AuditAnchor]:
        """Every anchor so far, oldest first."""
        return self._anchors

    @workflow.query
    def broken(self) -> BrokenLink | None:
        """Where the last verification found the chain broken, if it did."""
        return self._broken


@workflow.defn(name=SUBJECT_RETENTION_WORKFLOW)
class SubjectRetentionWorkflow:
    """One data subject's retention: sleeps until their earliest record is due (or until a
    record, a hold or a change of period arrives), deletes what is due, ends when nothing of
    theirs is left (see `baton.compliance.retention`)."""

    @workflow.init
    def __init__(self, input: RetentionInput) -> None:
        self._ref = input.ref
        self._changed = False
        self._state: RetentionState | None = None

    @workflow.run
    async def run(self, input: RetentionInput) -> Deletion:
        deleted = input.deleted
        for _ in range(RETENTION_CYCLES_PER_RUN):
            self._changed = False
            state = await self._read(input)
            if state.records == 0 and not state.held:
                await workflow.wait_condition(workflow.all_handlers_finished)
                if self._changed:  # a record arrived meanwhile
                    continue
                workflow.set_current_details(f"nothing left; deleted {deleted.records} records in all")
                return deleted
            if not state.held and state.next_due is not None:
                wait = state.next_due - workflow.now()
                try:
                    if wait > timedelta(0):
                        await workflow.wait_condition(lambda: self._changed, timeout=wait)
                        continue
                except TimeoutError:
                    pass
                deleted += await workflow.execute_activity(
                    DELETE_DUE_ACTIVITY,
                    DeleteDue(ref=self._ref, now=workflow.now()),
                    start_to_close_timeout=RETENTION_ACTIVITY_TIMEOUT,
                    retry_policy=SWEEP_RETRY,
                    result_type=Deletion,
                )
            else:
                await workflow.wait_condition(lambda: self._changed)
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(input.model_copy(update={"deleted": deleted}))

    async def _read(self, input: RetentionInput) -> RetentionState:
        state = await workflow.execute_activity(
            RETENTION_STATE_ACTIVITY,
            self._ref,
            start_to_close_timeout=RETENTION_ACTIVITY_TIMEOUT,
            retry_policy=SWEEP_RETRY,
            result_type=RetentionState,
        )
        self._show(state, input.search_attributes)
        return state

    def _show(self, state: RetentionState, search_attributes: bool) -> None:
        self._state = state
        due = None if state.held else state.next_due
        if state.held:  # the reason may name people: it stays in the database
            details = f"on legal hold; {state.records} records"
        elif due is not None:
            details = f"{state.records} records, next due {due:%Y-%m-%d %H:%M} UTC"
        else:
            details = "no records"
        workflow.set_current_details(details)
        if search_attributes:
            workflow.upsert_search_attributes(
                [BATON_RETENTION_DUE.value_set(due) if due else BATON_RETENTION_DUE.value_unset()]
            )

    @workflow.signal
    def records_changed(self) -> None:
        """A processing record of this subject was added or changed: read the state again."""
        self._changed = True

    @workflow.update
    async def hold(self, request: HoldRequest) -> RetentionState:
        """Place a legal hold: nothing is deleted until `release`."""
        return await self._change(HOLD_ACTIVITY, request.reason_note, request.actor)

    @workflow.update
    async def release(self, request: ReleaseRequest) -> RetentionState:
        """Lift the legal hold: what fell due meanwhile is deleted now."""
        return await self._change(RELEASE_ACTIVITY, request.actor)

    @workflow.update
    async def extend(self, request: ShiftRequest) -> RetentionState:
        """Keep every record `days` longer."""
        return await self._change(SHIFT_ACTIVITY, request.days, request.actor)

    @workflow.update
    async def shorten(self, request: ShiftRequest) -> RetentionState:
        """Keep every record `days` less (what becomes due is deleted at once)."""
        return await self._change(SHIFT_ACTIVITY, -request.days, request.actor)

    async def _change(self, activity: str, *args: object) -> RetentionState:
        state = await workflow.execute_activity(
            activity,
            args=[self._ref, *args],
            start_to_close_timeout=RETENTION_ACTIVITY_TIMEOUT,
            retry_policy=SWEEP_RETRY,
            result_type=RetentionState,
        )
        self._changed = True
        return state

    @workflow.query
    def state(self) -> RetentionState | None:
        """Records, next due date and hold, as last read."""
        return self._state


@workflow.defn(name=RETENTION_SWEEP_WORKFLOW)
class RetentionSweepWorkflow:
    """The daily safety net: deletes records past due that their subject's workflow did not."""

    @workflow.run
    async def run(self) -> SweepReport:
        report = await workflow.execute_activity(
            SWEEP_DUE_ACTIVITY,
            workflow.now(),
            start_to_close_timeout=SWEEP_TIMEOUT,
            heartbeat_timeout=timedelta(minutes=1),
            retry_policy=SWEEP_RETRY,
            result_type=SweepReport,
        )
        workflow.set_current_details(
            f"{report.subjects} subjects had records past due; deleted {report.deleted.records} records"
        )
        return report


@workflow.defn(name=DATA_SUBJECT_REQUEST_WORKFLOW)
class DataSubjectRequestWorkflow:
    """A data subject's access, erasure or rectification request, answered within a month: the work retries
    until done while the deadline's timers raise a warning 5 days before and an alert after
    (see `baton.compliance.requests`). Every step is audited."""

    @workflow.run
    async def run(self, request: SubjectRequest) -> RequestResult:
        deadline = deadline_of(workflow.now())
        workflow.set_current_details(f"{request.kind.value} request, due {deadline:%Y-%m-%d}")
        await self._step(request, "received", {"deadline": deadline.isoformat()})
        work = workflow.start_activity(
            {
                RequestKind.ACCESS: ACCESS_ACTIVITY,
                RequestKind.ERASURE: ERASURE_ACTIVITY,
                RequestKind.RECTIFICATION: RECTIFICATION_ACTIVITY,
            }[request.kind],
            request,
            start_to_close_timeout=REQUEST_ACTIVITY_TIMEOUT,
            retry_policy=REQUEST_RETRY,
            result_type=RequestResult,
        )
        deadlines = (
            ("deadline.warning", deadline - WARN_BEFORE, Rule.REQUEST_DEADLINE_NEAR),
            ("deadline.overdue", deadline, Rule.REQUEST_OVERDUE),
        )
        for step, at, rule in deadlines:
            try:
                await workflow.wait_condition(work.done, timeout=max(at - workflow.now(), timedelta(0)))
                break
            except TimeoutError:
                workflow.set_current_details(f"{request.kind.value} request: {step}, due {deadline:%Y-%m-%d}")
                await self._step(request, step, {"deadline": deadline.isoformat()})
                await send_alert(
                    Alert(
                        rule=rule,
                        principal=request.actor,
                        count=1,
                        threshold=0,
                        window_seconds=0,
                        at=workflow.now(),
                        message=f"data-subject {request.kind.value} request {request.request_id} is due "
                        f"{deadline:%Y-%m-%d} and not answered",
                    )
                )
        try:
            result = await work
        except ActivityError as e:  # refused (a legal hold, say): the trail says so, then the run fails
            cause = e.cause
            error = cause.type if isinstance(cause, ApplicationError) and cause.type else type(cause).__name__
            message = cause.message if isinstance(cause, ApplicationError) else str(cause)
            workflow.set_current_details(f"{request.kind.value} request failed: {message}")
            await self._step(request, "failed", {"error": error, "message": message})
            raise
        await self._step(request, "completed", result.model_dump(mode="json", exclude_none=True))
        workflow.set_current_details(f"{request.kind.value} request completed")
        return result

    async def _step(self, request: SubjectRequest, step: str, detail: dict[str, object]) -> None:
        await workflow.execute_activity(
            REQUEST_AUDIT_ACTIVITY,
            RequestStep(request=request, step=step, detail=detail),
            start_to_close_timeout=RETENTION_ACTIVITY_TIMEOUT,
            retry_policy=SWEEP_RETRY,
        )


async def send_alert(alert: Alert) -> None:
    """Deliver an alert: retried until the webhook takes it (see `baton.compliance.alerts`)."""
    await workflow.execute_activity(
        SEND_ALERT_ACTIVITY, alert, start_to_close_timeout=timedelta(minutes=1), retry_policy=SWEEP_RETRY
    )


@workflow.defn(name=AUDIT_WATCH_WORKFLOW)
class AuditWatchWorkflow:
    """Every minute, the alerts the audit trail's last window calls for, each sent once per
    window per rule and principal (see `baton.compliance.alerts`)."""

    @workflow.run
    async def run(self, input: WatchInput) -> None:
        alerted = dict(input.alerted)
        for _ in range(SCANS_PER_RUN):
            scan = await workflow.execute_activity(
                SCAN_AUDIT_ACTIVITY,
                workflow.now(),
                start_to_close_timeout=timedelta(minutes=5),
                retry_policy=SWEEP_RETRY,
                result_type=ScanResult,
            )
            for alert in scan.alerts:
                last = alerted.get(alert.key)
                if last is not None and alert.at - last < timedelta(seconds=alert.window_seconds):
                    continue
                alerted[alert.key] = alert.at
                await send_alert(alert)
            workflow.set_current_details(
                f"{scan.entries} audit entries in the last window; {len(scan.alerts)} alerts due"
            )
            await workflow.sleep(timedelta(seconds=input.every_seconds))
        recent = {k: at for k, at in alerted.items() if workflow.now() - at < timedelta(days=1)}
        workflow.continue_as_new(input.model_copy(update={"alerted": recent}))

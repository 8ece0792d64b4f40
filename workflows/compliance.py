"""Compliance workflows: the stored-payload sweep, started by its schedule on the compliance
queue, and the audit witness, which anchors the audit chain's head in its history every day."""

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from baton.compliance import (
        ANCHOR_AUDIT_CHAIN_ACTIVITY,
        ANCHOR_TIMEOUT,
        ANCHORS_PER_RUN,
        AUDIT_WITNESS_WORKFLOW,
        STORED_PAYLOAD_SWEEP_WORKFLOW,
        SWEEP_RETRY,
        SWEEP_STORED_PAYLOADS_ACTIVITY,
        SWEEP_TIMEOUT,
        AnchorResult,
        AuditAnchor,
        BrokenLink,
        SweepResult,
        WitnessInput,
    )


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
            self._record(result)
            await workflow.sleep(timedelta(seconds=input.every_seconds))
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(input.model_copy(update={"anchors": self._anchors}))

    def _record(self, result: AnchorResult) -> None:
        self._broken = result.broken
        if result.broken is not None:
            # Nothing is anchored past a break: the anchors keep vouching for what came before.
            workflow.set_current_details(
                f"audit chain broken at entry {result.broken.seq}: {result.broken.problem}"
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

"""Compliance workflows: the stored-payload sweep, started by its schedule on the compliance queue."""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from baton.compliance import (
        STORED_PAYLOAD_SWEEP_WORKFLOW,
        SWEEP_RETRY,
        SWEEP_STORED_PAYLOADS_ACTIVITY,
        SWEEP_TIMEOUT,
        SweepResult,
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

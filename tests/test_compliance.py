"""The compliance queue: `baton worker --queues baton-compliance` serves the stored-payload sweep,
which its hourly schedule starts and which deletes the payloads of runs whose history is gone."""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from temporalio.api.common.v1 import Payload
from temporalio.client import Schedule, ScheduleActionStartWorkflow, ScheduleSpec, ScheduleState
from temporalio.converter import StorageDriverStoreContext, StorageDriverWorkflowInfo
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from baton.activities.compliance import ComplianceActivities
from baton.compliance import SWEEP_EVERY, AuditLog, ProcessingRecords, sweep_schedule_id
from baton.persistence.db import create_engine
from baton.persistence.payloads import SWEEP_GRACE
from baton.process import Process, ProcessBuilder, ProcessResult
from baton.process.runtime import ProcessInput
from baton.security.codec import WORKFLOW
from baton.settings import BatonSettings
from baton.temporal import history_exists, payload_store, settings_converter
from baton.testing import ProcessEnvironment
from baton.workflows.process import ProcessWorkflow
from tests.conftest import Journal, baton_worker
from tests.steps import ALLOWED, Gate, Step1, Step2, linear
from tests.test_process_runs import wait_for_state


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


def waiting_parent_of_a_finished_child() -> Process:
    child = ProcessBuilder("BigChild")
    c1, c2 = child.add_step(Step1), child.add_step(Step2)
    child.on_input_event("Begin").send_event_to(c1)
    c1.on_function_result().send_event_to(c2)
    c2.on_function_result().stop_process()
    b = ProcessBuilder("WaitingParent")
    sub, gate = b.add_process(child), b.add_step(Gate)
    b.on_input_event("Start").send_event_to(sub)
    sub.on_function_result().send_event_to(gate, parameter="value")
    b.on_input_event("ApprovalReceived").send_event_to(gate, parameter="approval")
    gate.on_function_result().stop_process()
    return b.build(ALLOWED)


async def sweep(env: ProcessEnvironment) -> int:
    """One run of the sweep activity, aging every stored payload past the grace period first."""
    engine = create_engine(env.settings.resolved_database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.text("UPDATE stored_payloads SET created_at = :at"),
                {"at": datetime.now(UTC) - SWEEP_GRACE - timedelta(minutes=1)},
            )
        store = payload_store(env.temporal.data_converter)
        records = ProcessingRecords(store.schema, env.client.subjects)
        activities = ComplianceActivities(env.temporal, store, AuditLog(store.schema), records, env.settings)
        return (await ActivityEnvironment().run(activities.sweep_stored_payloads)).deleted
    finally:
        await engine.dispose()


@pytest.fixture
def small_offload(settings: BatonSettings) -> BatonSettings:
    return settings.model_copy(update={"payload_offload_bytes": 1024})


async def test_a_sub_process_payloads_stay_while_its_parent_needs_them(
    temporal: WorkflowEnvironment, small_offload: BatonSettings, journal: Journal
) -> None:
    """A child's history expires before its waiting parent's, whose history holds the child's
    input and result too: they belong to the root run, and stay until its history is gone."""
    async with ProcessEnvironment(settings=small_offload, client=temporal.client) as env:
        run = await env.start(waiting_parent_of_a_finished_child(), "Start", secrets.token_hex(3000))
        await wait_for_state(run, lambda state: state.status == "waiting")
        # A child of the waiting parent whose history retention has removed already (deleting
        # one for real takes the dev server half a minute).
        expired_child = f"{run.id}/BigChild/2"
        assert not await history_exists(env.temporal, expired_child)
        await payload_store(env.temporal.data_converter).store(
            StorageDriverStoreContext(
                target=StorageDriverWorkflowInfo(namespace="default", id=expired_child)
            ),
            [Payload(metadata={WORKFLOW: expired_child.encode()}, data=os.urandom(4000))],
        )

        assert await sweep(env) == 0
        await env.stop_worker()  # a restart replays the parent from its history
        await env.start_worker()
        await run.send_event("ApprovalReceived", {"approved": True})
        assert (await run.result()).output.endswith(":approved")


async def test_a_schedules_arguments_stay_while_the_schedule_exists(
    temporal: WorkflowEnvironment, small_offload: BatonSettings, journal: Journal
) -> None:
    async with ProcessEnvironment(settings=small_offload, client=temporal.client) as env:
        schedule_id = f"nightly-{uuid.uuid4().hex[:8]}"
        process = linear().build(ALLOWED)
        schedule = await env.temporal.create_schedule(
            schedule_id,
            Schedule(
                action=ScheduleActionStartWorkflow(
                    ProcessWorkflow.run,
                    ProcessInput(
                        process=process.compiled,
                        event="Start",
                        data=secrets.token_hex(3000),
                        steps_queue=env.settings.steps_queue,
                        llm_queue=env.settings.llm_queue,
                    ),
                    id=f"process-Linear-{schedule_id}",
                    task_queue=env.settings.workflows_queue,
                ),
                spec=ScheduleSpec(),
                state=ScheduleState(paused=True),
            ),
        )
        try:
            assert await sweep(env) == 0
            await schedule.trigger()  # a run of the schedule still reads its arguments
            for _ in range(100):
                recent = (await schedule.describe()).info.recent_actions
                if recent:
                    break
                await asyncio.sleep(0.1)
            started = env.temporal.get_workflow_handle(
                recent[0].action.workflow_id, result_type=ProcessResult
            )
            assert (await started.result()).output.endswith("-1-2-3")
        finally:
            await schedule.delete()
        # The schedule is gone, its run's history still starts with those arguments.
        assert await sweep(env) == 0
        assert (await started.result()).output.endswith("-1-2-3")

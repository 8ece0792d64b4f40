"""Retention by durable timer, on the time-skipping server: a subject's data is kept for its
retention period to the hour and deleted after, a legal hold keeps it past its due date, and the
daily sweep deletes what a terminated retention workflow left. Every deletion is audited."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from baton.compliance import (
    RETENTION_SUMMARY,
    AuditLog,
    Deletion,
    HoldRequest,
    LegalBasis,
    LegalHold,
    Processing,
    ProcessingRecords,
    retention_sweep_schedule_id,
    retention_workflow_id,
    sweep_schedule_id,
    witness_workflow_id,
)
from baton.persistence.db import create_engine
from baton.persistence.schema import Schema
from baton.persistence.subjects import SubjectKeys
from baton.security.keys import LiveKeyring, key_provider
from baton.settings import BatonSettings
from baton.starter import BatonClient, ProcessingRequired
from baton.starter.cli.privacy import _date
from baton.testing import ProcessEnvironment
from baton.workers.worker import build_workers
from baton.workflows.compliance import RetentionSweepWorkflow, SubjectRetentionWorkflow
from tests.conftest import baton_worker
from tests.steps import ALLOWED, approval_process, upper_only
from tests.test_cli import baton as baton_cli
from tests.test_requests import history_text

ALICE = "alice@example.com"
TWO_YEARS = Processing(purpose="order fulfilment", legal_basis=LegalBasis.CONTRACT, retention_days=730)
DAY = 24 * 3600


@pytest.fixture
def compliance_settings(settings: BatonSettings) -> BatonSettings:
    return settings.model_copy(update={"compliance_queue": f"test-compliance-{uuid.uuid4().hex[:8]}"})


@pytest.fixture
async def skipping(compliance_settings: BatonSettings) -> AsyncIterator[ProcessEnvironment]:
    """A time-skipping environment with the compliance queue's workers (no schedules: that
    server has none; the sweep is started by hand)."""
    async with ProcessEnvironment(settings=compliance_settings, time_skipping=True) as env:
        [worker] = build_workers(env.temporal, compliance_settings, [compliance_settings.compliance_queue])
        async with worker:
            yield env


async def eventually(check: Callable[[], object], what: str) -> None:
    for _ in range(300):
        if await check():  # type: ignore[misc]
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


async def started_retention(env: ProcessEnvironment) -> WorkflowHandle[SubjectRetentionWorkflow, Deletion]:
    """The subject's retention workflow, once it has read the subject's state."""
    handle = env.temporal.get_workflow_handle_for(
        SubjectRetentionWorkflow.run, retention_workflow_id(env.client.subjects.ref(ALICE))
    )

    async def has_read() -> bool:
        with contextlib.suppress(Exception):
            return await handle.query(SubjectRetentionWorkflow.state) is not None
        return False

    await eventually(has_read, "the retention workflow read the subject's state")
    return handle


async def current_details(handle: WorkflowHandle) -> str:
    """What the Temporal UI shows as the workflow's current details."""
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return metadata.current_details


async def stored_payloads_of(settings: BatonSettings, run_id: str) -> int:
    engine = create_engine(settings.resolved_database_url)
    try:
        async with engine.connect() as conn:
            return (
                await conn.execute(
                    sa.text("SELECT count(*) FROM stored_payloads WHERE workflow_id = :run"), {"run": run_id}
                )
            ).scalar_one()
    finally:
        await engine.dispose()


async def audited_actions(settings: BatonSettings) -> list[str]:
    engine = create_engine(settings.resolved_database_url)
    try:
        return [r.action for r in await AuditLog(Schema(engine)).tail(1000)]
    finally:
        await engine.dispose()


async def start_for_alice(env: ProcessEnvironment, data: str = "order 1042") -> str:
    run = await env.start(
        upper_only("Fulfil").build(ALLOWED), "Start", data, data_subject=ALICE, processing=TWO_YEARS
    )

    async def completed() -> bool:
        return (await run.state()).status == "completed"

    # Polled, not `run.result()`: waiting for a result lets the time-skipping server skip ahead,
    # here past the retention workflow's two-year timer.
    await eventually(completed, "the run completed")
    return run.id


async def test_a_subjects_run_needs_a_purpose_of_processing(env: ProcessEnvironment) -> None:
    with pytest.raises(ProcessingRequired, match="needs its purpose of processing"):
        await env.start(upper_only("Fulfil").build(ALLOWED), "Start", "x", data_subject=ALICE)
    with pytest.raises(ValueError, match="legal_basis"):
        Processing(purpose="marketing", legal_basis="because")  # type: ignore[arg-type]
    assert await env.client.records.of_subject(env.client.subjects.ref(ALICE)) == []


async def test_data_is_kept_its_retention_period_to_the_hour_and_deleted_after(
    skipping: ProcessEnvironment, compliance_settings: BatonSettings
) -> None:
    env = skipping
    # Random text stays large after compression: its payloads are stored out of band.
    document = base64.b64encode(secrets.token_bytes(48 * 1024)).decode()
    run_id = await start_for_alice(env, document)
    [record] = await env.client.records.of_subject(env.client.subjects.ref(ALICE))
    assert record.runs == [run_id] and record.purpose == "order fulfilment"
    assert await stored_payloads_of(compliance_settings, run_id) > 0
    key_id = await env.client.subjects.key_id_of(run_id)
    assert key_id is not None
    retention = await started_retention(env)

    details = await current_details(retention)
    assert details.startswith("1 records, next due ") and record.due_at.strftime("%Y-%m-%d") in details

    await env.sleep(730 * DAY - 3600)  # 729 days and 23 hours
    assert (await env.client.retention(ALICE).state()).records == 1

    await env.sleep(2 * 3600)
    result = await retention.result()  # nothing of Alice is left: the workflow ends
    assert result.records == 1 and result.key_erased and result.stored_payloads > 0
    assert await env.client.records.of_subject(record.subject_ref) == []
    assert await stored_payloads_of(compliance_settings, run_id) == 0
    assert await env.client.subjects.data_key(key_id) is None  # the histories are shredded
    actions = await audited_actions(compliance_settings)
    assert actions.index("retention.delete") < actions.index("subject.erase")


async def test_a_legal_hold_keeps_data_past_its_due_date_until_released(
    skipping: ProcessEnvironment, compliance_settings: BatonSettings
) -> None:
    env = skipping
    await start_for_alice(env)
    retention = await started_retention(env)
    held = await env.client.retention(ALICE).hold("litigation 2026-17 brought by Alice Smithers")
    assert held.held
    hold = await env.client.records.hold_of(env.client.subjects.ref(ALICE))
    assert hold is not None and hold.reason == "litigation 2026-17 brought by Alice Smithers"

    # The reason may name people: it stays in the database, where erasure reaches it, never in a history.
    async def shows_the_hold() -> bool:
        return await current_details(retention) == "on legal hold; 1 records"

    await eventually(shows_the_hold, "the workflow shows the hold")
    assert "Smithers" not in await history_text(env.temporal, retention.id)

    await env.sleep(800 * DAY)
    assert (await env.client.retention(ALICE).state()).records == 1

    await env.client.retention(ALICE).release()
    assert (await retention.result()).records == 1
    assert (await env.client.retention(ALICE).state()).records == 0
    actions = await audited_actions(compliance_settings)
    assert [a for a in actions if a.startswith("retention.")] == [
        "retention.hold",
        "retention.release",
        "retention.delete",
    ]


async def test_retention_waits_for_a_run_that_is_still_running(
    skipping: ProcessEnvironment, compliance_settings: BatonSettings
) -> None:
    """A run's data is due `retention_days` after it started; a run still going then (waiting
    for a person, say) keeps its data, and its key, until it has finished."""
    env = skipping
    ten_days = Processing(purpose="support request", legal_basis=LegalBasis.CONTRACT, retention_days=10)
    run = await env.start(
        approval_process("Waiting").build(ALLOWED),
        "Start",
        "alice's request",
        data_subject=ALICE,
        processing=ten_days,
    )
    retention = await started_retention(env)
    await env.sleep(11 * DAY)
    assert (await env.client.retention(ALICE).state()).records == 1
    assert (
        await env.client.retention(ALICE).shorten(5)
    ).records == 1  # shortening does not cut it off either

    await run.send_event("ApprovalReceived", {"approved": True})

    async def completed() -> bool:
        return (await run.state()).status == "completed"

    await eventually(completed, "the run completed")
    assert (await run.handle.result()).output == "ALICE'S REQUEST:approved"  # its data was still there
    await env.sleep(2 * DAY)
    assert (await retention.result()).records == 1
    actions = await audited_actions(compliance_settings)
    assert "retention.postpone" in actions and actions.index("retention.postpone") < actions.index(
        "retention.delete"
    )


async def test_extending_and_shortening_move_the_due_date(skipping: ProcessEnvironment) -> None:
    env = skipping
    await start_for_alice(env)
    await started_retention(env)
    retention = env.client.retention(ALICE)
    due = (await retention.state()).next_due
    assert due is not None
    assert (await retention.extend(30)).next_due == due + timedelta(days=30)
    assert (await retention.shorten(40)).next_due == due - timedelta(days=10)
    with pytest.raises(Exception, match="greater than or equal to 1"):
        await retention.extend(0)


async def test_the_sweep_deletes_what_a_terminated_retention_workflow_left(
    skipping: ProcessEnvironment, compliance_settings: BatonSettings
) -> None:
    env = skipping
    await start_for_alice(env)
    retention = await started_retention(env)
    await retention.terminate("an operator's mistake")

    await env.sleep(731 * DAY)
    assert (await env.client.retention(ALICE).state()).records == 1  # nobody deleted it
    report = await env.temporal.execute_workflow(
        RetentionSweepWorkflow.run,
        id=f"sweep-{uuid.uuid4()}",
        task_queue=compliance_settings.compliance_queue,
    )
    assert report.subjects == 1 and report.deleted.records == 1 and report.deleted.key_erased
    assert (await env.client.retention(ALICE).state()).records == 0


async def test_the_cli_records_lists_what_is_due_and_holds(
    baton_temporal: Client, compliance_settings: BatonSettings
) -> None:
    settings = compliance_settings
    address = baton_temporal.service_client.config.target_host
    environment = {"BATON_COMPLIANCE_QUEUE": settings.compliance_queue, "BATON_TEMPORAL_ADDRESS": address}
    worker = baton_worker(address, settings, [settings.compliance_queue], **environment)
    ref = BatonClient(baton_temporal, settings).subjects.ref(ALICE)
    try:
        installed = await baton_cli(settings, "compliance", "install", **environment)
        assert installed.returncode == 0, installed.stderr
        await baton_temporal.get_schedule_handle(
            retention_sweep_schedule_id(settings.compliance_queue)
        ).describe()

        record = ["privacy", "record", ALICE, "--purpose", "newsletter", "--retention-days", "10"]
        refused = await baton_cli(settings, *record, "--legal-basis", "because", **environment)
        assert refused.returncode == 2 and "invalid choice: 'because'" in refused.stderr
        recorded = await baton_cli(settings, *record, "--legal-basis", "consent", **environment)
        assert recorded.returncode == 0, recorded.stderr
        assert "recorded: newsletter (consent), due " in recorded.stdout

        soon = (datetime.now(UTC) + timedelta(days=20)).strftime("%Y-%m-%d")

        async def listed() -> bool:
            due = await baton_cli(settings, "privacy", "due", "--before", soon, **environment)
            return retention_workflow_id(ref) in due.stdout

        await eventually(listed, "the subject is listed as due within 20 days")
        described = await baton_temporal.get_workflow_handle(retention_workflow_id(ref)).describe()
        assert await described.static_summary() == RETENTION_SUMMARY  # what the UI's list shows
        held = await baton_cli(settings, "privacy", "hold", ALICE, "--reason", "case 7", **environment)
        assert held.returncode == 0 and "on legal hold" in held.stdout, held.stderr
        records = await baton_cli(settings, "privacy", "records", "ALICE@example.com ", **environment)
        assert "newsletter · consent · personal data" in records.stdout and "case 7" in records.stdout

        async def not_listed() -> bool:
            return not await listed()

        await eventually(not_listed, "a held subject is not due")
        released = await baton_cli(settings, "privacy", "release", ALICE, **environment)
        assert released.returncode == 0 and "1 records, next due" in released.stdout
        unknown = await baton_cli(
            settings, "privacy", "extend", "nobody@example.com", "--days", "3", **environment
        )
        assert unknown.returncode == 1 and "no processing records" in unknown.stderr
    finally:
        worker.terminate()
        worker.wait(30)
        for schedule in (retention_sweep_schedule_id, sweep_schedule_id):
            await baton_temporal.get_schedule_handle(schedule(settings.compliance_queue)).delete()
        await baton_temporal.get_workflow_handle(witness_workflow_id(settings.compliance_queue)).terminate()
        await baton_temporal.get_workflow_handle(retention_workflow_id(ref)).terminate()


async def test_a_hold_restarts_a_terminated_retention_workflow(skipping: ProcessEnvironment) -> None:
    env = skipping
    await start_for_alice(env)
    retention = await started_retention(env)
    await retention.terminate("an operator's mistake")
    held = await env.client.retention(ALICE).hold("case 9")
    assert held.held and held.records == 1
    assert (await retention.describe()).status == WorkflowExecutionStatus.RUNNING  # a new run

    async def shows_the_hold() -> bool:
        return await current_details(retention) == "on legal hold; 1 records"

    await eventually(shows_the_hold, "the restarted workflow shows the hold")


async def test_retention_deletes_only_the_payloads_of_the_subjects_own_runs(settings: BatonSettings) -> None:
    """Run IDs that differ only in case, or by a character SQL's LIKE would take for a wildcard,
    belong to other subjects; and a record may cover thousands of runs."""
    engine = create_engine(settings.resolved_database_url)
    try:
        subjects = SubjectKeys(Schema(engine), LiveKeyring(key_provider(settings)))
        records = ProcessingRecords(Schema(engine), subjects)
        alice_runs = ["process-p-ABC~ds", "process-a_b-k~ds", *(f"process-bulk-{n}~ds" for n in range(1500))]
        bob_runs = ["process-p-abc~ds", "process-aXb-k~ds"]
        stored = {}
        for subject, runs in ((ALICE, alice_runs), ("bob@example.com", bob_runs)):
            for run in runs[:2]:
                binding = await subjects.register(run, subject)
                stored[f"{run}/step/1"] = binding.key_id
            for run in runs:
                await records.record(subject, TWO_YEARS, run, "test")
        async with engine.begin() as conn:
            for n, (workflow_id, key_id) in enumerate(stored.items()):
                await conn.execute(
                    sa.text(
                        "INSERT INTO stored_payloads (digest, data, size, created_at, workflow_id, key_id) "
                        "VALUES (:digest, x'00', 1, CURRENT_TIMESTAMP, :run, :key)"
                    ),
                    {"digest": f"{n:064d}", "run": workflow_id, "key": key_id},
                )

        deleted = await records.delete_due(
            subjects.ref(ALICE), datetime.now(UTC) + timedelta(days=731), "test"
        )

        assert deleted.records == 1 and deleted.stored_payloads == 2
        async with engine.connect() as conn:
            left = (
                await conn.execute(sa.text("SELECT workflow_id FROM stored_payloads ORDER BY workflow_id"))
            ).all()
        assert [row[0] for row in left] == ["process-aXb-k~ds/step/1", "process-p-abc~ds/step/1"]
    finally:
        await engine.dispose()


async def test_an_erasure_never_deletes_what_a_legal_hold_keeps(settings: BatonSettings) -> None:
    """The hold is checked in the deletion's own transaction, so one placed a moment before
    cannot be passed over; the subject's key stays too."""
    engine = create_engine(settings.resolved_database_url)
    try:
        subjects = SubjectKeys(Schema(engine), LiveKeyring(key_provider(settings)))
        records = ProcessingRecords(Schema(engine), subjects)
        binding = await subjects.register("process-p-1~ds", ALICE)
        await records.record(ALICE, TWO_YEARS, "process-p-1~ds", "test")
        ref = subjects.ref(ALICE)
        await records.hold(ref, await records.file_note(ref, "case 12"), "dpo")
        with pytest.raises(LegalHold, match="on legal hold"):
            await records.delete_all(subjects.ref(ALICE), "dpo")
        assert (await records.state(subjects.ref(ALICE))).records == 1
        assert await subjects.data_key(binding.key_id) is not None
    finally:
        await engine.dispose()


def test_a_due_date_with_an_offset_is_converted_not_relabelled() -> None:
    assert _date("2026-01-01T10:00+05:00") == datetime(2026, 1, 1, 5, 0, tzinfo=UTC)
    assert _date("2026-01-01") == datetime(2026, 1, 1, tzinfo=UTC)


async def test_a_run_id_that_could_rewrite_a_visibility_query_is_refused(settings: BatonSettings) -> None:
    """Recorded runs are later looked up with a visibility query: a quote must never get there."""
    engine = create_engine(settings.resolved_database_url)
    try:
        records = ProcessingRecords(
            Schema(engine), SubjectKeys(Schema(engine), LiveKeyring(key_provider(settings)))
        )
        for run in ['x" OR WorkflowId != "', "x\\y", "x\ny", ""]:
            with pytest.raises(ValueError, match="is not a run's workflow ID"):
                await records.record(ALICE, TWO_YEARS, run, "test")
        assert await records.of_subject(records.subjects.ref(ALICE)) == []
    finally:
        await engine.dispose()


def test_a_hold_asked_for_before_notes_still_decodes() -> None:
    """Retention histories recorded before reasons became notes hold `{"reason": ...}`: they must
    replay. A hold naming neither is refused."""
    assert HoldRequest.model_validate({"reason": "case 7", "actor": "dpo"}).reason_note == ""
    assert HoldRequest(reason_note="ab12", actor="dpo").reason is None
    with pytest.raises(ValueError, match="names the note"):
        HoldRequest(actor="dpo")

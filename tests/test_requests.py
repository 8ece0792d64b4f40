"""Data-subject requests: access exports the subject's runs decrypted and nothing of anyone
else; erasure leaves nothing of theirs (on PostgreSQL) and reads their histories back to prove
it; the one-month deadline raises its warning and its alert on the time-skipping server."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from google.protobuf.message import Message
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from baton.compliance import AuditLog, LegalBasis, Processing, RequestKind, open_export, retention_workflow_id
from baton.persistence.db import create_engine
from baton.persistence.models import SubjectKeyRow
from baton.persistence.schema import Schema
from baton.process import Process
from baton.process.runtime import ProcessInput
from baton.security.codec import PayloadDecryptionError, subject_run_id
from baton.security.keys import LiveKeyring, key_provider
from baton.settings import BatonSettings
from baton.testing import ProcessEnvironment
from baton.workers.worker import build_workers
from baton.workflows.process import ProcessWorkflow
from tests.steps import ALLOWED, cycle, parent_with_subprocess, upper_only
from tests.test_alerts import Receiver
from tests.test_cli import baton as baton_cli

ALICE, BOB = "alice@example.com", "bob@example.com"
PURPOSE = Processing(purpose="order fulfilment", legal_basis=LegalBasis.CONTRACT)


@pytest.fixture
def compliance_settings(settings: BatonSettings, tmp_path: Path) -> BatonSettings:
    return settings.model_copy(
        update={
            "compliance_queue": f"test-compliance-{uuid.uuid4().hex[:8]}",
            "exports_dir": tmp_path / "exports",
        }
    )


@pytest.fixture
async def with_compliance(
    temporal: WorkflowEnvironment, compliance_settings: BatonSettings
) -> AsyncIterator[ProcessEnvironment]:
    async with ProcessEnvironment(settings=compliance_settings, client=temporal.client) as env:
        [worker] = build_workers(env.temporal, compliance_settings, [compliance_settings.compliance_queue])
        async with worker:
            yield env


async def run_for(env: ProcessEnvironment, subject: str, data: str) -> str:
    run = await env.start(
        upper_only("Orders").build(ALLOWED), "Start", data, data_subject=subject, processing=PURPOSE
    )
    await run.result()
    return run.id


async def test_access_exports_the_subjects_runs_decrypted_and_nothing_of_anyone_else(
    with_compliance: ProcessEnvironment, compliance_settings: BatonSettings
) -> None:
    env = with_compliance
    alice_runs = [await run_for(env, ALICE, f"alice order {n}") for n in (1, 2)]
    bob_run = await run_for(env, BOB, "bob's secret order")

    handle = await env.client.subject_request(RequestKind.ACCESS, ALICE)
    result = await handle.result()

    assert result.runs == 2 and result.export_path is not None
    path = Path(result.export_path)
    assert path.parent == compliance_settings.resolved_exports_dir and path.stat().st_mode & 0o077 == 0
    assert b"alice order" not in path.read_bytes()  # sealed
    bundle = open_export(path, LiveKeyring(key_provider(compliance_settings)).keyring)
    text = json.dumps(bundle)
    assert sorted(r["workflow_id"] for r in bundle["runs"]) == sorted(alice_runs)
    assert "alice order 1" in text and "ALICE ORDER 2" in text  # inputs and results, decrypted
    assert bob_run not in text and "bob" not in text.lower()
    assert [r["purpose"] for r in bundle["processing_records"]] == ["order fulfilment"]
    actions = [e["action"] for e in bundle["audit_entries"]]
    assert actions.count("processing.record") == 2 and "run.start" in actions

    audit = [r for r in await audit_of(compliance_settings) if r.action.startswith("subject_request.")]
    assert [r.action for r in audit] == ["subject_request.received", "subject_request.completed"]
    assert audit[1].detail["export_sha256"] == result.export_sha256


async def audit_of(settings: BatonSettings) -> list:
    engine = create_engine(settings.resolved_database_url)
    try:
        return await AuditLog(Schema(engine)).tail(1000)
    finally:
        await engine.dispose()


async def test_erasure_leaves_nothing_and_proves_the_histories_unreadable(
    temporal: WorkflowEnvironment, compliance_settings: BatonSettings, database_url: str
) -> None:
    settings = compliance_settings.model_copy(update={"database_url": SecretStr(database_url)})
    async with ProcessEnvironment(settings=settings, client=temporal.client) as env:
        [worker] = build_workers(env.temporal, settings, [settings.compliance_queue])
        async with worker:
            alice_run = await run_for(env, ALICE, "alice order " + "x" * 40_000)  # partly out of band
            bob_run = await run_for(env, BOB, "bob order")
            result = await (await env.client.subject_request(RequestKind.ERASURE, ALICE)).result()

            assert result.deleted is not None and result.deleted.records == 1 and result.deleted.key_erased
            assert result.payloads_checked > 0 and result.payloads_readable == 0
            ref = env.client.subjects.ref(ALICE)
            engine = create_engine(database_url)
            try:
                async with engine.connect() as conn:
                    records = await conn.scalar(
                        sa.text("SELECT count(*) FROM processing_records WHERE subject_ref = :ref"),
                        {"ref": ref},
                    )
                    stored = await conn.scalar(
                        sa.text("SELECT count(*) FROM stored_payloads WHERE workflow_id = :run"),
                        {"run": alice_run},
                    )
            finally:
                await engine.dispose()
            assert records == 0 and stored == 0
            with pytest.raises(PayloadDecryptionError, match="erased"):
                await env.temporal.get_workflow_handle(alice_run).result()
            assert await env.temporal.get_workflow_handle(bob_run).result() is not None


async def test_the_deadline_warns_five_days_before_and_alerts_after(
    compliance_settings: BatonSettings, tmp_path: Path
) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the exports folder should be")
    receiver = Receiver(failures=0)
    settings = compliance_settings.model_copy(
        update={"exports_dir": blocked / "exports", "alert_webhook_url": SecretStr(receiver.url)}
    )
    async with ProcessEnvironment(settings=settings, time_skipping=True) as env:
        [worker] = build_workers(env.temporal, settings, [settings.compliance_queue])
        async with worker:
            handle = await env.client.subject_request(RequestKind.ACCESS, ALICE)
            await env.sleep(26 * 24 * 3600)
            assert "deadline.warning" in await request_steps(settings)
            await env.sleep(5 * 24 * 3600)
            assert "deadline.overdue" in await request_steps(settings)
            blocked.unlink()  # the fault clears: the next attempt writes the export
            result = await handle.result()
            assert result.export_path is not None
    receiver.close()
    assert await request_steps(settings) == ["received", "deadline.warning", "deadline.overdue", "completed"]
    assert [a["rule"] for a in receiver.accepted] == [
        "subject_request_deadline_near",
        "subject_request_overdue",
    ]


async def request_steps(settings: BatonSettings) -> list[str]:
    for _ in range(100):
        steps = [
            r.action.removeprefix("subject_request.")
            for r in await audit_of(settings)
            if r.action.startswith("subject_request.")
        ]
        if steps and steps[-1] != "received":
            return steps
        await asyncio.sleep(0.05)
    return steps


async def test_rectification_files_the_subject_under_the_corrected_identifier(
    with_compliance: ProcessEnvironment, compliance_settings: BatonSettings, temporal: WorkflowEnvironment
) -> None:
    env = with_compliance
    wrong, right = "alice@exmaple.com", "alice@example.com"
    run = await run_for(env, wrong, "alice order")
    await run_for(env, right, "alice's other order")  # the corrected identifier has a record of that purpose

    address = temporal.client.service_client.config.target_host
    environment = {
        "BATON_COMPLIANCE_QUEUE": compliance_settings.compliance_queue,
        "BATON_TEMPORAL_ADDRESS": address,
    }
    note = f"typo in the e-mail; she is {right}"
    rectified = await baton_cli(
        compliance_settings,
        "privacy",
        "request",
        "rectify",
        wrong,
        "--to",
        right,
        "--note",
        note,
        **environment,
    )
    assert rectified.returncode == 0, rectified.stdout + rectified.stderr
    assert "rectified: 1 records and 1 keys now under the corrected identifier" in rectified.stdout

    subjects = env.client.subjects
    assert await env.client.records.of_subject(subjects.ref(wrong)) == []
    [record] = await env.client.records.of_subject(subjects.ref(right))
    assert run in record.runs and len(record.runs) == 2  # merged with the record of the same purpose
    entry = next(r for r in await audit_of(compliance_settings) if r.action == "subject_request.rectify")
    assert right not in json.dumps(entry.detail) and "typo in the e-mail" in entry.detail["note"]

    old = await env.temporal.get_workflow_handle(retention_workflow_id(subjects.ref(wrong))).describe()
    new = await env.temporal.get_workflow_handle(retention_workflow_id(subjects.ref(right))).describe()
    assert old.status == WorkflowExecutionStatus.TERMINATED and new.status == WorkflowExecutionStatus.RUNNING

    # Erasing the corrected identifier now shreds the run started under the wrong one.
    erased = await baton_cli(compliance_settings, "privacy", "erase", right, **environment)
    assert erased.returncode == 0, erased.stderr
    with pytest.raises(PayloadDecryptionError, match="erased"):
        await env.temporal.get_workflow_handle(run).result()


async def start_bound(
    env: ProcessEnvironment, subject: str, process: Process, data: object, **options: object
) -> str:
    """Start a subject's run as the client does (bound, recorded), with options the client does not offer."""
    run = (
        await env.client.subjects.register(subject_run_id(f"process-{process.name}-{uuid.uuid4()}"), subject)
    ).workflow_id
    await env.client.records.record(subject, PURPOSE, run, "test")
    handle = await env.temporal.start_workflow(
        ProcessWorkflow.run,
        ProcessInput(
            process=process.compiled,
            event="Start",
            data=data,
            steps_queue=env.settings.steps_queue,
            **options,
        ),
        id=run,
        task_queue=env.settings.workflows_queue,
    )
    await handle.result()
    return run


async def test_access_and_erasure_cover_every_run_continued_as_new_and_every_sub_process(
    with_compliance: ProcessEnvironment, compliance_settings: BatonSettings, journal: object
) -> None:
    env = with_compliance
    # Five laps, continuing as new after every second: three runs under one workflow ID.
    looping = await start_bound(env, ALICE, cycle().build(ALLOWED), 1, continue_as_new_after=2)
    parent = await env.start(
        parent_with_subprocess().build(ALLOWED),
        "Start",
        "alice's parcel",
        data_subject=ALICE,
        processing=PURPOSE,
    )
    await parent.result()

    result = await (await env.client.subject_request(RequestKind.ACCESS, ALICE)).result()
    bundle = open_export(
        Path(result.export_path or ""), LiveKeyring(key_provider(compliance_settings)).keyring
    )
    runs = bundle["runs"]
    looped = [r for r in runs if r["workflow_id"] == looping]
    assert len(looped) == 3 and len({r["run_id"] for r in looped}) == 3
    assert looped[0]["inputs"][0]["data"] == 1  # the first run's start, which only its history holds
    assert looped[-1]["result"]["output"] == {"laps": 5}
    [child] = [r for r in runs if r["workflow_id"].startswith(parent.id + "/")]
    assert "alice's parcel" in json.dumps(child["inputs"]) and child["result"] is not None
    assert result.runs == len(runs) == 5

    erased = await (await env.client.subject_request(RequestKind.ERASURE, ALICE)).result()
    assert erased.runs == 5 and erased.payloads_readable == 0
    first = env.temporal.get_workflow_handle(looping, run_id=looped[0]["run_id"])
    sealed = [e async for e in first.fetch_history_events()]
    assert erased.payloads_checked > len(sealed)  # every run's payloads were read back, not the last's alone


async def test_an_erasure_request_also_erases_keys_made_before_identifiers_were_normalised(
    with_compliance: ProcessEnvironment,
) -> None:
    env = with_compliance
    subjects = env.client.subjects
    await run_for(env, ALICE, "alice order")
    [legacy_ref] = subjects.legacy_refs("Alice@Example.com ")  # how 0.1 keyed it: not normalised
    async with subjects._sessions() as session:
        session.add(
            SubjectKeyRow(key_id=f"{legacy_ref}.1", ref=legacy_ref, generation=1, wrapped_key=b"sealed")
        )
        await session.commit()

    result = await (await env.client.subject_request(RequestKind.ERASURE, "Alice@Example.com ")).result()

    assert result.deleted is not None and result.deleted.key_erased
    async with subjects._sessions() as session:
        legacy = await session.get(SubjectKeyRow, f"{legacy_ref}.1")
    assert legacy is not None and legacy.wrapped_key is None


async def test_a_refused_request_is_audited_as_failed(
    with_compliance: ProcessEnvironment, compliance_settings: BatonSettings
) -> None:
    env = with_compliance
    await run_for(env, ALICE, "alice order")
    await env.client.retention(ALICE).hold("case 31")

    with pytest.raises(WorkflowFailureError):
        await (await env.client.subject_request(RequestKind.ERASURE, ALICE)).result()

    steps = [r for r in await audit_of(compliance_settings) if r.action.startswith("subject_request.")]
    assert [r.action for r in steps][-2:] == ["subject_request.received", "subject_request.failed"]
    assert steps[-1].detail["error"] == "LegalHold"


async def test_a_rectification_note_never_enters_a_history(
    with_compliance: ProcessEnvironment, compliance_settings: BatonSettings
) -> None:
    env = with_compliance
    await run_for(env, "alice@exmaple.com", "alice order")
    note = "her maiden name was Smithers"
    handle = await env.client.subject_request(
        RequestKind.RECTIFICATION, "alice@exmaple.com", corrected=ALICE, note=note
    )
    await handle.result()

    assert "Smithers" not in await history_text(env.temporal, handle.id)
    entry = next(r for r in await audit_of(compliance_settings) if r.action == "subject_request.rectify")
    assert "Smithers" in entry.detail["note"]  # audited, in the database, where erasure can reach it


async def history_text(client: Client, workflow_id: str) -> str:
    """Every payload of the workflow's (latest) history, decoded, as one text."""
    found: list[Payload] = []

    def collect(message: Message) -> None:
        for field, value in message.ListFields():
            if field.message_type is None:
                continue
            if field.message_type.GetOptions().map_entry:
                values = list(value.values())
            elif field.is_repeated:
                values = list(value)
            else:
                values = [value]
            for item in values:
                if isinstance(item, Payload):
                    found.append(item)
                elif isinstance(item, Message):
                    collect(item)

    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        collect(event)
    return json.dumps(await client.data_converter.decode(found), default=str)

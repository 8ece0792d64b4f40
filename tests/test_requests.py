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
from pydantic import SecretStr
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from baton.compliance import AuditLog, LegalBasis, Processing, RequestKind, open_export, retention_workflow_id
from baton.persistence.db import create_engine
from baton.persistence.schema import Schema
from baton.security.codec import PayloadDecryptionError
from baton.security.keys import LiveKeyring, key_provider
from baton.settings import BatonSettings
from baton.testing import ProcessEnvironment
from baton.workers.worker import build_workers
from tests.steps import ALLOWED, upper_only
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

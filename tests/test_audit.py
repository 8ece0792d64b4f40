"""The audit trail on SQLite and PostgreSQL: a hash chain that concurrent writers in several
processes never fork, that the database keeps append-only, and that `verify` finds broken
wherever it was tampered with, even rewritten whole, thanks to the anchors of the witness."""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import uuid
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from baton.compliance import (
    AuditAnchor,
    AuditEntry,
    AuditLog,
    AuditRecord,
    LegalBasis,
    Processing,
    WitnessInput,
    witness_workflow_id,
)
from baton.compliance.audit import entry_hash
from baton.orchestration import ManagerSpec
from baton.persistence.db import create_engine
from baton.persistence.migrate import upgrade
from baton.persistence.schema import Schema
from baton.persistence.subjects import Erasure, SubjectKeys
from baton.security.codec import subject_run_id
from baton.security.keys import LiveKeyring, key_provider
from baton.settings import BatonSettings
from baton.starter import BatonClient, InvalidEventData
from baton.testing import ProcessEnvironment
from baton.workers.worker import start_witness
from baton.workflows.compliance import AuditWitnessWorkflow
from tests.conftest import POSTGRES_ADMIN_DSN, _postgres_admin, baton_worker
from tests.steps import ALLOWED, approval_process, upper_only
from tests.test_cli import baton as baton_cli
from tests.test_process_runs import wait_for_state

WRITER = """
import asyncio, sys
from baton.compliance import AuditEntry, AuditLog
from baton.persistence.db import create_engine
from baton.persistence.schema import Schema
from baton.persistence.subjects import Erasure, SubjectKeys
from baton.security.codec import subject_run_id
from baton.security.keys import LiveKeyring, key_provider

async def main(url: str, who: str) -> None:
    engine = create_engine(url)
    log = AuditLog(Schema(engine))
    for i in range(0, 500, 10):  # ten at a time, as a busy service would
        await asyncio.gather(
            *(log.append(AuditEntry(actor=who, action="test.write", detail={"i": i + j})) for j in range(10))
        )
    await engine.dispose()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.fixture(params=["sqlite", "postgresql"])
async def fresh_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated app database of this test's own: tampering must not reach other tests."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'baton.db'}"
    else:
        name = f"baton_audit_{uuid.uuid4().hex[:10]}"
        await _postgres_admin(f'CREATE DATABASE "{name}"')
        url = (
            POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
            + f"/{name}"
        )
    engine = create_engine(url)
    await upgrade(engine)
    await engine.dispose()
    yield url
    if request.param == "postgresql":
        await _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def engine(fresh_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(fresh_database)
    yield engine
    await engine.dispose()


def entry(actor: str = "alice", action: str = "run.start", **fields: object) -> AuditEntry:
    return AuditEntry(actor=actor, action=action, **fields)  # type: ignore[arg-type]


async def drop_triggers(engine: AsyncEngine) -> None:
    """What an administrator of the database could do."""
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(sa.text("DROP TRIGGER audit_events_append_only ON audit_events"))
        else:
            await conn.execute(sa.text("DROP TRIGGER audit_events_no_update"))
            await conn.execute(sa.text("DROP TRIGGER audit_events_no_delete"))


async def test_entries_form_a_chain_that_verifies(engine: AsyncEngine) -> None:
    log = AuditLog(Schema(engine))
    [first] = await log.append(entry(resource="process-Order-1"))
    batches = await asyncio.gather(*(log.append(entry(actor=f"user-{i}")) for i in range(50)))

    assert first.seq == 1 and first.prev_hash == "0" * 64
    assert sorted(r.seq for [r] in batches) == list(range(2, 52))
    result = await log.verify()
    assert result.ok and result.entries == 51
    tail = await log.tail(3)
    assert [r.seq for r in tail] == [49, 50, 51]
    assert tail[1].prev_hash == tail[0].hash and tail[2].prev_hash == tail[1].hash
    assert tail[2].hash == entry_hash(tail[2])
    assert (await log.head()).seq == 51


async def test_personal_data_in_details_is_masked(engine: AsyncEngine) -> None:
    log = AuditLog(Schema(engine))
    [record] = await log.append(
        entry(detail={"note": "asked by alice@example.com", "nested": ["+1 415 555 0100"]})
    )
    stored = json.dumps((await log.tail(1))[0].detail)
    assert "alice@example.com" not in stored and "555 0100" not in stored
    assert record.detail == (await log.tail(1))[0].detail


async def test_the_database_refuses_to_change_or_delete_entries(engine: AsyncEngine) -> None:
    await AuditLog(Schema(engine)).append(entry(), entry())
    statements = ["UPDATE audit_events SET actor = 'mallory'", "DELETE FROM audit_events WHERE seq = 1"]
    if engine.dialect.name == "postgresql":
        statements.append("TRUNCATE audit_events")
    for statement in statements:
        with pytest.raises(DBAPIError, match="audit_events is append-only"):
            async with engine.begin() as conn:
                await conn.execute(sa.text(statement))
    assert (await AuditLog(Schema(engine)).verify()).entries == 2


@pytest.mark.parametrize(
    ("tampering", "problem"),
    [
        (
            "UPDATE audit_events SET actor = 'mallory' WHERE seq = 3",
            "entry 3 was changed: its content does not match its hash",
        ),
        ("DELETE FROM audit_events WHERE seq = 3", "entry 3 missing: the chain jumps to entry 4"),
        (
            "UPDATE audit_events SET prev_hash = hash WHERE seq = 3",
            "entry 3 does not follow entry 2 (its prev_hash differs)",
        ),
    ],
    ids=["changed", "deleted", "relinked"],
)
async def test_a_tampered_entry_is_named(engine: AsyncEngine, tampering: str, problem: str) -> None:
    log = AuditLog(Schema(engine))
    await log.append(*(entry(actor=f"user-{i}") for i in range(5)))
    await drop_triggers(engine)
    async with engine.begin() as conn:
        await conn.execute(sa.text(tampering))
    broken = (await log.verify()).broken
    assert broken is not None and broken.seq == 3 and broken.problem == problem


async def test_a_consistent_rewrite_of_the_whole_chain_is_caught_by_an_anchor(engine: AsyncEngine) -> None:
    log = AuditLog(Schema(engine))
    await log.append(*(entry(actor=f"user-{i}") for i in range(5)))
    anchor = await log.head()  # what the witness keeps in Temporal
    await log.append(entry(actor="later"))
    await drop_triggers(engine)
    await rewrite_consistently(engine, seq=2, actor="mallory")

    assert (await log.verify()).ok  # a chain alone cannot tell: it was rewritten to fit
    broken = (await log.verify([anchor])).broken
    assert broken is not None and broken.seq == 5
    assert "not the one anchored in Temporal" in broken.problem

    async with engine.begin() as conn:  # and entries cut off the end
        await conn.execute(sa.text("DELETE FROM audit_events WHERE seq >= 4"))
    broken = (await log.verify([anchor])).broken
    assert broken is not None and broken.seq == 4
    assert "an anchor saw entry 5, the table ends at 3" in broken.problem


async def rewrite_consistently(engine: AsyncEngine, seq: int, actor: str) -> None:
    """Change entry `seq` and recompute every hash from there, as a careful forger would."""
    records = [r for r in await AuditLog(Schema(engine)).tail(1000) if r.seq >= seq]
    prev_hash = records[0].prev_hash
    async with engine.begin() as conn:
        for record in records:
            record.prev_hash = prev_hash
            if record.seq == seq:
                record.actor = actor
            record.hash = prev_hash = entry_hash(record)
            await conn.execute(
                sa.text(
                    "UPDATE audit_events SET actor = :actor, prev_hash = :prev, hash = :hash WHERE seq = :seq"
                ),
                {"actor": record.actor, "prev": record.prev_hash, "hash": record.hash, "seq": record.seq},
            )


async def test_two_processes_writing_at_once_never_fork_the_chain(fresh_database: str) -> None:
    writers = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", WRITER, fresh_database, who)
        for who in ("writer-a", "writer-b")
    ]
    assert [await w.wait() for w in writers] == [0, 0]
    engine = create_engine(fresh_database)
    try:
        log = AuditLog(Schema(engine))
        result = await log.verify()
        assert result.ok and result.entries == 1000
        async with engine.connect() as conn:
            rows = await conn.execute(sa.text("SELECT actor, count(*) FROM audit_events GROUP BY actor"))
            counts = {actor: count for actor, count in rows}
        assert counts == {"writer-a": 500, "writer-b": 500}
    finally:
        await engine.dispose()


async def test_migrating_chains_the_entries_written_before(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    try:
        await upgrade(engine, "0005")
        async with engine.begin() as conn:
            for actor in ("alice", "bob"):
                await conn.execute(
                    sa.text(
                        "INSERT INTO audit_events (at, actor, action, namespace, workflow_id, detail) "
                        "VALUES (CURRENT_TIMESTAMP, :actor, 'payload.decode', 'default', 'process-X-1', '{}')"
                    ),
                    {"actor": actor},
                )
        await upgrade(engine)
        log = AuditLog(Schema(engine))
        await log.append(entry(actor="carol"))
        assert [r.actor for r in await log.tail()] == ["alice", "bob", "carol"]
        assert (await log.verify()).entries == 3
    finally:
        await engine.dispose()


@dataclass
class Witnessed:
    """Three audit entries, an audit witness that anchors every half second (not daily), and a
    `baton worker` serving its compliance queue."""

    settings: BatonSettings
    engine: AsyncEngine
    log: AuditLog
    witness: WorkflowHandle
    environment: dict[str, str]


@pytest.fixture
async def witnessed(baton_temporal: Client, settings: BatonSettings) -> AsyncIterator[Witnessed]:
    settings = settings.model_copy(update={"compliance_queue": f"test-compliance-{uuid.uuid4().hex[:8]}"})
    engine = create_engine(settings.resolved_database_url)
    log = AuditLog(Schema(engine))
    await log.append(*(entry(actor=f"user-{i}") for i in range(3)))
    # The worker starts the witness unless it runs: this one is started first, to be quick.
    witness = await baton_temporal.start_workflow(
        AuditWitnessWorkflow.run,
        WitnessInput(every_seconds=0.5),
        id=witness_workflow_id(settings.compliance_queue),
        task_queue=settings.compliance_queue,
    )
    address = baton_temporal.service_client.config.target_host
    environment = {"BATON_COMPLIANCE_QUEUE": settings.compliance_queue, "BATON_TEMPORAL_ADDRESS": address}
    worker = baton_worker(address, settings, [settings.compliance_queue], **environment)
    try:
        yield Witnessed(settings, engine, log, witness, environment)
    finally:
        worker.terminate()
        worker.wait(30)
        await baton_temporal.get_workflow_handle(witness.id).terminate()
        await engine.dispose()


async def test_the_witness_anchors_the_head_and_verify_uses_its_anchors(witnessed: Witnessed) -> None:
    settings, environment = witnessed.settings, witnessed.environment
    await wait_for_anchor(witnessed.witness, seq=3)
    await witnessed.log.append(entry(actor="later"))
    await wait_for_anchor(witnessed.witness, seq=4)
    verified = await baton_cli(settings, "audit", "verify", **environment)
    assert verified.returncode == 0, verified.stderr
    assert "4 entries verified, against 2 anchors kept in Temporal" in verified.stdout

    await drop_triggers(witnessed.engine)
    await rewrite_consistently(witnessed.engine, seq=1, actor="mallory")
    caught = await baton_cli(settings, "audit", "verify", **environment)
    offline = await baton_cli(settings, "audit", "verify", "--no-anchors", **environment)
    assert caught.returncode == 1
    assert "audit chain broken at entry 3" in caught.stderr and "anchored in Temporal" in caught.stderr
    assert offline.returncode == 0  # which is why the anchors are kept where the database is not
    tail = await baton_cli(settings, "audit", "tail", "-n", "2", "--action", "run.start", **environment)
    assert tail.returncode == 0 and "later" in tail.stdout and "run.start" in tail.stdout


async def wait_for_anchor(witness: WorkflowHandle, seq: int) -> list[AuditAnchor]:
    for _ in range(300):
        anchors = await witness.query(AuditWitnessWorkflow.anchors)
        if anchors and anchors[-1].seq >= seq:
            return anchors
        await asyncio.sleep(0.1)
    raise AssertionError(f"the witness never anchored entry {seq}")


async def audited(settings: BatonSettings, **where: str) -> list[tuple[str, str, str | None]]:
    """(actor, action, resource) of the audit entries matching `where`, in chain order."""
    engine = create_engine(settings.resolved_database_url)
    try:
        records = await AuditLog(Schema(engine)).tail(1000)
    finally:
        await engine.dispose()
    return [
        (r.actor, r.action, r.resource)
        for r in records
        if all(getattr(r, field) == value for field, value in where.items())
    ]


async def test_run_starts_events_and_cancels_are_audited_with_who(
    temporal: WorkflowEnvironment, settings: BatonSettings
) -> None:
    process = approval_process("Audited").build(ALLOWED)
    async with ProcessEnvironment(settings=settings, client=temporal.client) as env:
        baton = BatonClient(env.temporal, settings, actor="svc-billing")
        purpose = Processing(purpose="contract review", legal_basis=LegalBasis.CONTRACT)
        run = await baton.start_process(
            process, "Start", "contract", data_subject="alice@example.com", processing=purpose
        )
        await wait_for_state(run, lambda s: s.status == "waiting")
        with pytest.raises(InvalidEventData):
            await run.send_event("ApprovalReceived", {"approved": "maybe"})  # refused by the run
        await run.send_event("ApprovalReceived", {"approved": True})
        await run.result()
        other = await baton.start_process(process, "Start", "memo")
        await other.cancel()
        await baton.close()

    assert await audited(settings, workflow_id=run.id) == [
        ("svc-billing", "run.start", run.id),
        ("svc-billing", "run.event", run.id),  # refused by the run: recorded as tried, and failed
        ("svc-billing", "run.event_failed", run.id),
        ("svc-billing", "run.event", run.id),
    ]
    assert [action for _, action, _ in await audited(settings, actor="svc-billing")][:2] == [
        "processing.record",  # before the run starts
        "run.start",
    ]
    assert [action for _, action, _ in await audited(settings, workflow_id=other.id)] == [
        "run.start",
        "run.cancel",
    ]
    assert "alice" not in json.dumps([r.model_dump(mode="json") for r in await tail_of(settings)])


async def tail_of(settings: BatonSettings) -> list[AuditRecord]:
    engine = create_engine(settings.resolved_database_url)
    try:
        return await AuditLog(Schema(engine)).tail(1000)
    finally:
        await engine.dispose()


async def test_erasures_and_key_rotations_are_audited_without_the_identifier(settings: BatonSettings) -> None:
    engine = create_engine(settings.resolved_database_url)
    try:
        subjects = SubjectKeys(Schema(engine), LiveKeyring(key_provider(settings)))
        binding = await subjects.register(subject_run_id(f"agent-Clerk-{uuid.uuid4()}"), "Alice@Example.com")
        assert await subjects.erase("alice@example.com", actor="dpo") is Erasure.ERASED
        assert await subjects.erase("alice@example.com", actor="dpo") is Erasure.ALREADY_ERASED  # no deletion
        ref = subjects.ref("alice@example.com")
    finally:
        await engine.dispose()
    rotated = await baton_cli(settings, "keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr

    records = await tail_of(settings)
    assert [(r.actor, r.action, r.resource, r.detail) for r in records[:1]] == [
        ("dpo", "subject.erase", f"subject:{ref}", {"keys": [binding.key_id]})
    ]
    assert [r.action for r in records] == ["subject.erase", "key.rotate"]
    assert records[1].resource == "key:" + rotated.stdout.split("new current key ")[1].split(";")[0]
    assert "alice" not in json.dumps([r.model_dump(mode="json") for r in records]).lower()


async def test_an_append_that_cannot_be_written_fails_and_the_next_one_is_tried(tmp_path: Path) -> None:
    (tmp_path / "baton.db").mkdir()  # a folder where the database file should be
    missing = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'baton.db'}")
    log = AuditLog(Schema(missing))
    try:
        for _ in range(2):  # each caller hears of it; none waits for ever
            with pytest.raises(OperationalError, match="unable to open database file"):
                await asyncio.wait_for(log.append(entry()), 10)
    finally:
        await missing.dispose()


async def test_verifying_from_an_anchor_notices_the_anchored_entry_gone_or_changed(
    engine: AsyncEngine,
) -> None:
    """What the witness does each day: entries below its last anchor are not read again, but
    the anchored entry itself must still be there, as anchored."""
    log = AuditLog(Schema(engine))
    await log.append(*(entry(actor=f"user-{i}") for i in range(5)))
    anchor = await log.head()
    await drop_triggers(engine)
    async with engine.begin() as conn:
        await conn.execute(sa.text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 5"))
    changed = (await log.verify(since=anchor)).broken
    assert changed is not None and changed.seq == 5 and "anchored in Temporal" in changed.problem
    async with engine.begin() as conn:
        await conn.execute(sa.text("DELETE FROM audit_events WHERE seq >= 4"))
    gone = (await log.verify(since=anchor)).broken
    assert gone is not None and gone.seq == 5 and "missing" in gone.problem


async def test_an_entry_that_cannot_be_recorded_is_refused_alone(engine: AsyncEngine) -> None:
    log = AuditLog(Schema(engine))
    good = [log.append(entry(actor=f"user-{i}")) for i in range(5)]
    bad = log.append(entry(detail={"when": datetime.now(UTC)}))
    nan = log.append(entry(detail={"score": float("nan")}))
    results = await asyncio.gather(*good, bad, nan, return_exceptions=True)
    assert all(isinstance(r, list) for r in results[:5])
    assert isinstance(results[5], ValueError) and "detail" in str(results[5])
    assert isinstance(results[6], ValueError)
    assert (await log.verify()).entries == 5


async def refuse_audit_of(settings: BatonSettings, *actions: str) -> None:
    """Make the (SQLite) audit trail refuse entries of `actions`, as a full disk might."""
    engine = create_engine(settings.resolved_database_url)
    try:
        await upgrade(engine)
        listed = ", ".join(f"'{action}'" for action in actions)
        async with engine.begin() as conn:
            await conn.execute(
                sa.text(
                    f"CREATE TRIGGER refuse_actions BEFORE INSERT ON audit_events WHEN NEW.action IN "
                    f"({listed}) BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
    finally:
        await engine.dispose()


async def test_a_start_the_audit_trail_cannot_record_is_not_made(
    temporal: WorkflowEnvironment, settings: BatonSettings
) -> None:
    await refuse_audit_of(settings, "run.start")
    async with ProcessEnvironment(settings=settings, client=temporal.client) as env:
        with pytest.raises(DBAPIError, match="refused"):
            await env.start(upper_only("Unaudited").build(ALLOWED), "Start", "x", key="unaudited-1")
        with pytest.raises(RPCError, match="not found"):
            await env.temporal.get_workflow_handle("process-Unaudited-unaudited-1").describe()


async def test_events_cancels_and_replies_the_audit_trail_cannot_record_are_not_made(
    temporal: WorkflowEnvironment, settings: BatonSettings
) -> None:
    """As for starts: done first and audited after, an action the trail refused was made all the
    same, and a caller who tried again (the call failed) made it twice."""
    await refuse_audit_of(settings, "run.event", "run.cancel", "run.reply")
    async with ProcessEnvironment(settings=settings, client=temporal.client) as env:
        run = await env.start(approval_process("Unaudited").build(ALLOWED), "Start", "x")
        await wait_for_state(run, lambda s: s.status == "waiting")
        with pytest.raises(DBAPIError, match="refused"):
            await run.send_event("ApprovalReceived", {"approved": True})
        with pytest.raises(DBAPIError, match="refused"):
            await run.cancel()
        state = await run.state()
        assert state.status == "waiting" and [m.target.parameter for m in state.pending] == ["value"]

        chat = await env.client.run_group_chat(
            "x", ["Developer", "QA"], manager=ManagerSpec(ask_human_every=1), max_rounds=3
        ).start()
        while (await chat.progress()).status != "waiting_for_input":
            await asyncio.sleep(0.05)
        with pytest.raises(DBAPIError, match="refused"):
            await chat.reply("Go on")
        assert (await chat.progress()).status == "waiting_for_input"
        await chat.handle.terminate()
        await run.handle.terminate()
    assert [action for _, action, _ in await audited(settings, workflow_id=run.id)] == ["run.start"]


async def test_a_started_run_is_returned_when_its_retention_workflow_cannot_be_told(
    temporal: WorkflowEnvironment, settings: BatonSettings, caplog: pytest.LogCaptureFixture
) -> None:
    # A compliance queue name Temporal refuses: the signal to the subject's retention fails.
    settings = settings.model_copy(update={"compliance_queue": "q" * 2000})
    purpose = Processing(purpose="contract review", legal_basis=LegalBasis.CONTRACT)
    async with ProcessEnvironment(settings=settings, client=temporal.client) as env:
        run = await env.start(
            upper_only("Told").build(ALLOWED),
            "Start",
            "x",
            data_subject="alice@example.com",
            processing=purpose,
        )
        assert (await run.result()).output == "X"  # started, and said so
    assert "the daily retention sweep deletes its data when due" in caplog.text
    assert [action for _, action, _ in await audited(settings, workflow_id=run.id)] == ["run.start"]


async def test_a_restarted_witness_keeps_the_anchors_of_the_one_before(
    witnessed: Witnessed, baton_temporal: Client
) -> None:
    settings = witnessed.settings
    await wait_for_anchor(witnessed.witness, seq=3)
    await witnessed.witness.terminate("an administrator covering their tracks")
    await drop_triggers(witnessed.engine)
    await rewrite_consistently(witnessed.engine, seq=1, actor="mallory")

    await start_witness(baton_temporal, settings)  # what every compliance worker does as it starts
    restarted = baton_temporal.get_workflow_handle(witnessed.witness.id)
    anchors = await restarted.query(AuditWitnessWorkflow.anchors)
    assert anchors and anchors[0].seq == 3  # carried over, not the forged head
    caught = await baton_cli(settings, "audit", "verify", **witnessed.environment)
    assert caught.returncode == 1 and "anchored in Temporal" in caught.stderr
    await wait_for_broken(restarted)  # and the new witness says so itself


async def wait_for_broken(witness: WorkflowHandle) -> None:
    for _ in range(300):
        if await witness.query(AuditWitnessWorkflow.broken) is not None:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the witness never found the chain broken")


async def test_verify_without_anchors_fails_unless_asked_to_check_the_chain_alone(
    settings: BatonSettings, temporal: WorkflowEnvironment
) -> None:
    environment = {
        "BATON_COMPLIANCE_QUEUE": f"no-witness-{uuid.uuid4().hex[:8]}",
        "BATON_TEMPORAL_ADDRESS": temporal.client.service_client.config.target_host,
    }
    unanchored = await baton_cli(settings, "audit", "verify", **environment)
    assert unanchored.returncode == 2 and "--no-anchors" in unanchored.stderr
    alone = await baton_cli(settings, "audit", "verify", "--no-anchors", **environment)
    assert alone.returncode == 0, alone.stderr


def test_an_audit_log_keeps_working_on_a_new_event_loop(tmp_path: Path) -> None:
    """A writer left pending on a loop that was closed must not hold up appends on the next one."""
    assert append_after_a_closed_loop(tmp_path).actor == "second"
    # What the closed loop left unrun (the schema's migration, the first writer) is collected
    # here: collected later, in another test, its "never awaited" warning could land inside the
    # workflow sandbox's importer, which Python 3.11 cannot take (sdk-python #585).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        gc.collect()


def append_after_a_closed_loop(tmp_path: Path) -> AuditRecord:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'baton.db'}")
    log = AuditLog(Schema(engine))

    left: list[asyncio.Future[list[AuditRecord]]] = []

    async def leave_a_writer_behind() -> None:
        left.append(asyncio.ensure_future(log.append(entry(actor="first"))))
        await asyncio.sleep(0)  # the writer is created, and the loop stops before it ends

    first = asyncio.new_event_loop()
    first.run_until_complete(leave_a_writer_behind())
    first.close()

    async def append_again() -> list[AuditRecord]:
        try:
            return await asyncio.wait_for(log.append(entry(actor="second")), 10)
        finally:
            await engine.dispose()

    [record] = asyncio.run(append_again())
    return record

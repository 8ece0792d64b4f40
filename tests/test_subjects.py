"""Crypto-shredding: erasing a data subject makes their payloads in Temporal unreadable, and only theirs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    StorageDriverClaim,
    StorageDriverRetrieveContext,
    StorageDriverStoreContext,
    StorageDriverWorkflowInfo,
    WorkflowSerializationContext,
)
from temporalio.testing import WorkflowEnvironment

from baton.agents import AgentSpec
from baton.compliance import LegalBasis, Processing
from baton.llm import LlmResponse
from baton.persistence.db import create_engine
from baton.persistence.payloads import SWEEP_GRACE, DatabasePayloadDriver, PayloadNotFound
from baton.persistence.schema import Schema
from baton.persistence.subjects import ERASURE_POLL_SECONDS, Erasure, SubjectKeyError, SubjectKeys
from baton.security.codec import (
    SUBJECT,
    WORKFLOW,
    EncryptionCodec,
    PayloadDecryptionError,
    PayloadEncryptionError,
    subject_run_id,
)
from baton.security.keys import LiveKeyring, key_provider
from baton.settings import BatonSettings
from baton.starter.client import BatonClient, RunAlreadyExists
from baton.temporal import encryption_codec, history_exists, settings_converter, with_converter
from baton.testing import ProcessEnvironment
from tests.steps import ALLOWED, approval_process, linear, parent_with_subprocess
from tests.test_cli import baton as baton_cli

ALICE, BOB = "alice@example.com", "bob@example.com"
PURPOSE = Processing(purpose="customer service", legal_basis=LegalBasis.CONTRACT)
CLERK = AgentSpec(name="Clerk", instructions="You are a records clerk.", pii="off", processing=PURPOSE)


async def payloads_of(env: ProcessEnvironment, workflow_id: str) -> list[Payload]:
    history = await env.temporal.get_workflow_handle(workflow_id).fetch_history()
    found = []
    for event in history.events:
        for attributes in (
            event.workflow_execution_started_event_attributes.input,
            event.activity_task_scheduled_event_attributes.input,
            event.activity_task_completed_event_attributes.result,
            event.workflow_execution_completed_event_attributes.result,
        ):
            found += attributes.payloads
    return found


async def test_erasing_a_subject_shreds_their_histories_and_no_one_elses(env: ProcessEnvironment) -> None:
    alice = await env.client.start_agent(CLERK, f"Update the address of {ALICE}", data_subject=ALICE)
    bob = await env.client.start_agent(CLERK, f"Update the address of {BOB}", data_subject=BOB)
    nobody = await env.client.start_agent(CLERK, "Count the open tickets")
    for handle in (alice, bob, nobody):
        await handle.result()
    assert "alice" not in alice.id and "example" not in alice.id

    erased = await baton_cli(env.settings, "privacy", "erase", ALICE)
    again = await baton_cli(env.settings, "privacy", "erase", ALICE)
    assert erased.returncode == again.returncode == 0
    assert "erased:" in erased.stdout and "erased before" in again.stdout

    # A process that never held the keys in memory: what any reader after the erasure sees.
    engine = create_engine(env.settings.resolved_database_url)
    try:
        codec = encryption_codec(settings_converter(env.settings, engine))
        alice_payloads, bob_payloads = await payloads_of(env, alice.id), await payloads_of(env, bob.id)
        assert alice_payloads and all(SUBJECT in p.metadata for p in alice_payloads + bob_payloads)
        for payload in alice_payloads:
            with pytest.raises(PayloadDecryptionError, match="erased data subject"):
                await codec.decode([payload])
        assert any(BOB.encode() in p.data for p in await codec.decode(bob_payloads))
        assert len(await codec.decode(await payloads_of(env, nobody.id))) > 0

        async with engine.connect() as conn:
            rows = [
                *(await conn.execute(sa.text("SELECT * FROM subject_keys"))).all(),
                *(await conn.execute(sa.text("SELECT * FROM workflow_subjects"))).all(),
            ]
        stored = " ".join(map(str, rows))
        assert "alice" not in stored and "bob" not in stored  # references, never identifiers
    finally:
        await engine.dispose()


async def test_a_sub_process_holds_its_root_runs_subject(env: ProcessEnvironment) -> None:
    run = await env.start(
        parent_with_subprocess().build(ALLOWED), "Start", "x", data_subject=ALICE, processing=PURPOSE
    )
    assert (await run.result()).output == "x-1-2-3"
    child_id = f"{run.id}/Child/1"
    assert all(SUBJECT in p.metadata for p in await payloads_of(env, child_id))


async def test_orchestrations_name_their_subject_too(env: ProcessEnvironment) -> None:
    run = await env.client.run_sequential(f"File a complaint for {ALICE}", ["DataExtraction"]).start(
        data_subject=ALICE, processing=PURPOSE
    )
    await run.result()
    assert all(SUBJECT in p.metadata for p in await payloads_of(env, run.id))


async def served_from(env: ProcessEnvironment, question: str, subject: str | None) -> str | None:
    """Which cache level answered the agent's LLM call (None: the model did)."""
    handle = await env.client.start_agent(CLERK, question, data_subject=subject)
    await handle.result()
    history = await handle.fetch_history()
    (completed,) = [e for e in history.events if e.HasField("activity_task_completed_event_attributes")]
    payloads = completed.activity_task_completed_event_attributes.result.payloads
    (response,) = await env.temporal.data_converter.decode(payloads, [LlmResponse])
    return response.cached


async def test_a_subjects_llm_answers_are_never_cached(env: ProcessEnvironment) -> None:
    # Temperature 0: answers are cached for everyone, except runs that hold a subject's data.
    assert await served_from(env, "What is open?", None) is None
    assert await served_from(env, "What is open?", None) == "l1"
    assert await served_from(env, "What is open?", "dora") is None  # never served from the cache
    assert await served_from(env, "What is closed?", "erin") is None
    assert await served_from(env, "What is closed?", None) is None  # and never put into it


async def test_a_subjects_llm_answers_never_reach_redis(
    temporal: WorkflowEnvironment, settings: BatonSettings
) -> None:
    """So that erasing a subject leaves no Redis key of theirs: none is ever written."""
    shared = settings.model_copy(update={"redis_url": SecretStr("redis://127.0.0.1:6379/0")})
    question = f"What is closed on {uuid.uuid4()}?"  # asked by no earlier run
    for subject, expected in (("erin", None), (None, None), (None, "l2")):
        # A new environment each time: its own, empty L1 cache, and the same Redis.
        async with ProcessEnvironment(settings=shared, client=temporal.client) as env:
            assert await served_from(env, question, subject) == expected


async def test_a_subject_erased_and_registered_again_gets_a_new_key_generation(
    env: ProcessEnvironment,
) -> None:
    """The reported loss: erase, start a new run for the same subject, and the new run was sealed
    with the erased key (the client's and the codec's caches disagreed), unreadable by anyone."""
    first = await env.client.start_agent(CLERK, "first", data_subject="carol")
    await first.result()
    erased = await baton_cli(env.settings, "privacy", "erase", "carol")  # another process
    assert erased.returncode == 0, erased.stderr
    second = await env.client.start_agent(CLERK, "second", data_subject="carol")
    assert (await second.result()).answer.startswith("[simulated")

    first_keys = {p.metadata[SUBJECT] for p in await payloads_of(env, first.id)}
    second_keys = {p.metadata[SUBJECT] for p in await payloads_of(env, second.id)}
    assert len(first_keys) == len(second_keys) == 1 and first_keys != second_keys
    assert second_keys.pop().decode().endswith(".2")  # generation 2 of the same reference
    async with fresh_codec(env) as codec:  # any reader, long after: the new run stays readable
        assert await codec.decode(await payloads_of(env, second.id))
        with pytest.raises(PayloadDecryptionError, match="erased data subject"):
            await codec.decode(await payloads_of(env, first.id))


async def test_subject_identifiers_are_normalised_and_a_miss_is_not_nothing(env: ProcessEnvironment) -> None:
    handle = await env.client.start_agent(CLERK, "update the address", data_subject="alice@example.com")
    await handle.result()

    erased = await baton_cli(env.settings, "privacy", "erase", " Alice@Example.COM")
    again = await baton_cli(env.settings, "privacy", "erase", "alice@example.com")
    unknown = await baton_cli(env.settings, "privacy", "erase", "alicia@example.com")

    assert erased.returncode == 0 and "erased:" in erased.stdout
    assert again.returncode == 0 and "erased before" in again.stdout
    assert unknown.returncode == 1 and "no such data subject" in unknown.stderr
    async with fresh_codec(env) as codec:
        with pytest.raises(PayloadDecryptionError, match="erased data subject"):
            await codec.decode(await payloads_of(env, handle.id))


async def test_a_reused_run_key_never_runs_a_subjects_data_under_the_master_key(
    env: ProcessEnvironment,
) -> None:
    process = linear().build(ALLOWED)
    plain = await env.start(process, "Start", "x", key="claim-9")
    await plain.result()  # the workers have now seen this run key without a subject

    held = await env.start(process, "Start", "y", key="claim-9", data_subject=ALICE, processing=PURPOSE)
    assert (await held.result()).output == "y-1-2-3"

    assert held.id != plain.id and "alice" not in held.id
    assert all(SUBJECT in p.metadata for p in await payloads_of(env, held.id))
    assert not any(SUBJECT in p.metadata for p in await payloads_of(env, plain.id))


async def test_a_duplicate_start_with_another_subject_changes_nothing(env: ProcessEnvironment) -> None:
    process = approval_process().build(ALLOWED)  # waits for a person: still running below
    running = await env.start(process, "Start", "x", key="claim-10", data_subject=ALICE, processing=PURPOSE)
    with pytest.raises(SubjectKeyError, match="another data subject"):
        await env.start(process, "Start", "x", key="claim-10", data_subject=BOB, processing=PURPOSE)
    with pytest.raises(RunAlreadyExists):
        await env.start(process, "Start", "x", key="claim-10", data_subject=ALICE, processing=PURPOSE)
    await running.send_event("ApprovalReceived", {"approved": True})
    await running.result()
    alice_key = await env.client.subjects.key_id_of(running.id)
    assert {p.metadata[SUBJECT].decode() for p in await payloads_of(env, running.id)} == {alice_key}


async def test_a_run_id_belongs_to_one_subject(env: ProcessEnvironment) -> None:
    subjects = env.client.subjects
    run = subject_run_id("process-Claims-key-7")
    first = await subjects.register(run, ALICE)
    assert (
        await subjects.register(run, "Alice@example.com ")
    ).key_id == first.key_id  # same run, same person
    with pytest.raises(SubjectKeyError, match="already belongs to another data subject"):
        await subjects.register(run, BOB)
    with pytest.raises(ValueError, match="non-empty identifier"):
        await subjects.register(subject_run_id("process-Claims-key-8"), "  ")
    with pytest.raises(ValueError, match="not the ID of a root run that holds a data subject"):
        await subjects.register("process-Claims-key-9", ALICE)
    assert await subjects.erase(ALICE) is Erasure.ERASED
    with pytest.raises(SubjectKeyError, match="erased since; use another run key"):
        await subjects.register(run, ALICE)
    with pytest.raises(SubjectKeyError, match="never registered"):
        await subjects.key_id_of(subject_run_id("process-Claims-unknown"))


async def test_a_codec_without_subject_keys_refuses_a_subjects_run(settings: BatonSettings) -> None:
    codec = EncryptionCodec(LiveKeyring(key_provider(settings)))
    bound = codec.with_context(
        WorkflowSerializationContext(namespace="default", workflow_id=subject_run_id("agent-x"))
    )
    with pytest.raises(PayloadEncryptionError, match="has no subject keys"):
        await bound.encode([Payload(data=b"{}")])


async def test_erasure_reaches_another_process_and_deletes_stored_payloads(
    database_url: str, settings: BatonSettings
) -> None:
    """Two registries on one database, as two processes: one erases, the other stops using the
    key it holds in memory at its next look at the erasure log (ERASURE_POLL_SECONDS)."""
    settings = settings.model_copy(update={"database_url": SecretStr(database_url)})
    keys = LiveKeyring(key_provider(settings))
    eraser_engine, worker_engine = create_engine(database_url), create_engine(database_url)
    try:
        eraser = SubjectKeys(Schema(eraser_engine), keys)
        worker = SubjectKeys(Schema(worker_engine), keys)
        binding = await eraser.register(subject_run_id(f"agent-Clerk-{uuid.uuid4()}"), ALICE)
        assert binding.key_id == f"{eraser.ref(ALICE)}.1"
        assert await worker.key_id_of(binding.workflow_id) == binding.key_id
        assert await worker.data_key(binding.key_id) is not None  # now held in memory
        driver = DatabasePayloadDriver(Schema(eraser_engine))
        stored = Payload(
            metadata={SUBJECT: binding.key_id.encode(), WORKFLOW: binding.workflow_id.encode()},
            data=b"x" * 40_000,
        )
        (claim,) = await driver.store(StorageDriverStoreContext(), [stored])

        assert await eraser.erase(ALICE) is Erasure.ERASED
        for _ in range(100):  # polled, not timed: the bound is measured in docs/BENCHMARKS.md
            if await worker.data_key(binding.key_id) is None:
                break
            await asyncio.sleep(ERASURE_POLL_SECONDS / 2)
        assert await worker.data_key(binding.key_id) is None
        with pytest.raises(PayloadNotFound, match="erased"):
            await driver.retrieve(StorageDriverRetrieveContext(), [claim])

        again = await worker.register(subject_run_id(f"agent-Clerk-{uuid.uuid4()}"), ALICE)
        assert again.key_id == f"{eraser.ref(ALICE)}.2"
        assert await eraser.data_key(again.key_id) is not None
    finally:
        await eraser_engine.dispose()
        await worker_engine.dispose()


async def test_stored_payloads_go_when_their_runs_history_is_gone(
    env: ProcessEnvironment, database_url: str
) -> None:
    engine = create_engine(database_url)
    try:
        driver = DatabasePayloadDriver(Schema(engine))
        done = await env.start(linear().build(ALLOWED), "Start", "x")
        await done.result()
        expired = f"process-Expired-{uuid.uuid4()}"
        # The same run ID in another namespace (one app database may serve several): not this
        # namespace's sweep to judge.
        runs = {"kept": ("default", done.id), "gone": ("default", expired), "elsewhere": ("other", expired)}

        async def store(namespace: str, run: str) -> StorageDriverClaim:
            context = StorageDriverStoreContext(target=StorageDriverWorkflowInfo(namespace=namespace, id=run))
            (claim,) = await driver.store(
                context, [Payload(metadata={WORKFLOW: run.encode()}, data=os.urandom(4000))]
            )
            return claim

        claims = {name: await store(namespace, run) for name, (namespace, run) in runs.items()}
        fresh = await store("default", f"process-New-{uuid.uuid4()}")
        async with engine.begin() as conn:  # older than the sweep's grace period (the database is shared)
            for _, run in runs.values():
                await conn.execute(
                    sa.text("UPDATE stored_payloads SET created_at = :at WHERE workflow_id = :run"),
                    {"at": datetime.now(UTC) - SWEEP_GRACE - timedelta(minutes=1), "run": run},
                )

        deleted = await driver.delete_unreferenced("default", lambda run: history_exists(env.temporal, run))

        assert deleted == 1
        await driver.retrieve(StorageDriverRetrieveContext(), [claims["kept"], claims["elsewhere"], fresh])
        with pytest.raises(PayloadNotFound):
            await driver.retrieve(StorageDriverRetrieveContext(), [claims["gone"]])
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def fresh_codec(env: ProcessEnvironment) -> AsyncIterator[EncryptionCodec]:
    """A codec with nothing in memory: what a process started after the fact sees."""
    engine = create_engine(env.settings.resolved_database_url)
    try:
        yield encryption_codec(settings_converter(env.settings, engine))
    finally:
        await engine.dispose()


@dataclass
class TwoProcesses:
    worker: SubjectKeys
    eraser: SubjectKeys
    key_id: str
    """Alice's key, registered by the eraser; the worker has read the erasure log once."""


@pytest.fixture
async def two_processes(database_url: str, settings: BatonSettings) -> AsyncIterator[TwoProcesses]:
    """Two registries on one app database, each with its own engine, as two processes have."""
    keys = LiveKeyring(key_provider(settings))
    worker_engine, eraser_engine = create_engine(database_url), create_engine(database_url)
    worker, eraser = SubjectKeys(Schema(worker_engine), keys), SubjectKeys(Schema(eraser_engine), keys)
    try:
        binding = await eraser.register(subject_run_id(f"agent-Clerk-{uuid.uuid4()}"), ALICE)
        assert await worker.data_key(f"{binding.key_id}-warm-up") is None  # the log is read once
        yield TwoProcesses(worker, eraser, binding.key_id)
    finally:
        await worker_engine.dispose()
        await eraser_engine.dispose()


async def test_a_key_read_across_an_erasure_is_not_kept(two_processes: TwoProcesses) -> None:
    """A worker reads a live key; meanwhile the subject is erased and another request of the
    worker reads the erasure log. The key it read must not be cached past that log read."""
    worker, eraser, key_id = two_processes.worker, two_processes.eraser, two_processes.key_id
    release, reading = asyncio.Event(), asyncio.Event()
    sessions = worker._sessions

    @contextlib.asynccontextmanager
    async def slow_session() -> AsyncIterator[Any]:
        async with sessions() as session:
            yield session
            reading.set()
            await release.wait()  # the row is read; its answer arrives late

    worker._sessions = slow_session  # type: ignore[assignment]
    read = asyncio.create_task(worker.data_key(key_id))
    await reading.wait()
    worker._sessions = sessions
    assert await eraser.erase(ALICE) is Erasure.ERASED
    await asyncio.sleep(ERASURE_POLL_SECONDS)
    assert await worker.data_key("another-key") is None  # another request reads the log
    release.set()

    assert await read is None  # read again after the log read, and found erased
    assert await worker.data_key(key_id) is None


async def test_a_key_read_that_ends_while_the_log_read_closes_is_not_kept(
    two_processes: TwoProcesses,
) -> None:
    """As above, but the key read ends after the log read saw the erasure and before that log
    read has finished (its session is still closing): the key must not be cached either."""
    worker, eraser, key_id = two_processes.worker, two_processes.eraser, two_processes.key_id
    sessions = worker._sessions

    def closing_late(used: asyncio.Event, release: asyncio.Event) -> Any:
        """A session factory whose first session is slow to close."""
        gated = [True]

        @contextlib.asynccontextmanager
        async def session() -> AsyncIterator[Any]:
            async with sessions() as opened:
                yield opened
                if gated.pop() if gated else False:
                    used.set()
                    await release.wait()

        return session

    key_read, release_key_read = asyncio.Event(), asyncio.Event()
    worker._sessions = closing_late(key_read, release_key_read)  # type: ignore[assignment]
    read = asyncio.create_task(worker.data_key(key_id))
    await key_read.wait()  # the key's row is read, live
    assert await eraser.erase(ALICE) is Erasure.ERASED
    await asyncio.sleep(ERASURE_POLL_SECONDS)
    log_read, release_log_read = asyncio.Event(), asyncio.Event()
    worker._sessions = closing_late(log_read, release_log_read)  # type: ignore[assignment]
    other = asyncio.create_task(worker.data_key("another-key"))  # reads the log first
    await log_read.wait()  # the log read saw the erasure; its session is closing
    release_key_read.set()
    await read  # the key read ends now, with the log read not yet over
    release_log_read.set()
    assert await other is None
    worker._sessions = sessions
    assert await worker.data_key(key_id) is None


async def test_a_registration_racing_an_erasure_never_binds_to_the_erased_key(
    database_url: str, settings: BatonSettings
) -> None:
    """The subject is erased after a registration read the live key and before it wrote the
    binding. Either the erasure waits for the registration (PostgreSQL locks the key) and then
    erases the key the run is bound to, or the registration notices and takes a new generation
    (SQLite): never a binding, made after the erasure, to the erased key."""
    keys = LiveKeyring(key_provider(settings))
    client_engine, eraser_engine = create_engine(database_url), create_engine(database_url)
    eraser = SubjectKeys(Schema(eraser_engine), keys)
    done: dict[str, float] = {}

    async def erase() -> None:
        assert await eraser.erase(ALICE) is Erasure.ERASED
        done["erasure"] = time.monotonic()

    class ErasedBeforeTheBinding(SubjectKeys):
        erasing: asyncio.Task[None] | None = None

        async def _bind(self, session: Any, workflow_id: str, ref: str) -> Any:
            if self.erasing is not None:  # the attempt after the race: undisturbed
                return await super()._bind(session, workflow_id, ref)
            flush = session.flush

            async def erase_then_flush(*args: Any, **kwargs: Any) -> None:
                session.flush = flush
                self.erasing = asyncio.create_task(erase())
                await asyncio.sleep(0.5)  # committed (SQLite), or waiting on our lock (PostgreSQL)
                await flush(*args, **kwargs)

            session.flush = erase_then_flush
            return await super()._bind(session, workflow_id, ref)

    client = ErasedBeforeTheBinding(Schema(client_engine), keys)
    try:
        first = await eraser.register(subject_run_id(f"agent-Clerk-{uuid.uuid4()}"), ALICE)
        second = await client.register(subject_run_id(f"agent-Clerk-{uuid.uuid4()}"), ALICE)
        done["registration"] = time.monotonic()
        assert client.erasing is not None
        await client.erasing
        if second.key_id == first.key_id:  # bound to the key that existed when it was read...
            assert done["erasure"] > done["registration"]  # ...because the erasure came after
        else:
            assert await eraser.data_key(second.key_id) is not None  # a new, live generation
    finally:
        await client_engine.dispose()
        await eraser_engine.dispose()


async def test_a_start_that_loses_a_race_leaves_the_winners_binding(
    env: ProcessEnvironment, temporal: Any
) -> None:
    """Two clients start one run key for one subject at once: the loser's failure must not undo
    the binding the winner's running run seals with."""
    process = approval_process().build(ALLOWED)
    engine = create_engine(env.settings.resolved_database_url)
    loser = BatonClient(
        with_converter(temporal.client, settings_converter(env.settings, engine)), env.settings
    )
    start, go = loser.temporal.start_workflow, asyncio.Event()

    async def held_start(*args: Any, **kwargs: Any) -> Any:
        await go.wait()
        return await start(*args, **kwargs)

    loser.temporal.start_workflow = held_start  # type: ignore[method-assign]
    try:
        losing = asyncio.create_task(
            loser.start_process(process, "Start", "x", key="claim-11", data_subject=ALICE, processing=PURPOSE)
        )
        await asyncio.sleep(0.5)  # the loser registered first (it made the binding), then waits
        winner = await env.start(
            process, "Start", "x", key="claim-11", data_subject=ALICE, processing=PURPOSE
        )
        go.set()
        with pytest.raises(RunAlreadyExists):
            await losing
        async with fresh_codec(env) as codec:  # any other process: the codec server, a new worker
            assert codec.subjects is not None
            assert await codec.subjects.key_id_of(winner.id) is not None
        await winner.send_event("ApprovalReceived", {"approved": True})
        assert (await winner.result()).output == "X:approved"
    finally:
        await engine.dispose()

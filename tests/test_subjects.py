"""Crypto-shredding: erasing a data subject makes their payloads in Temporal unreadable, and only theirs."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from temporalio.api.common.v1 import Payload

from baton.agents import AgentSpec
from baton.llm import LlmResponse
from baton.persistence.db import create_engine
from baton.security.codec import SUBJECT, PayloadDecryptionError
from baton.temporal import settings_converter
from baton.testing import ProcessEnvironment
from tests.steps import ALLOWED, parent_with_subprocess
from tests.test_cli import baton as baton_cli

ALICE, BOB = "alice@example.com", "bob@example.com"
CLERK = AgentSpec(name="Clerk", instructions="You are a records clerk.", pii="off")


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
    assert "erased" in erased.stdout and "nothing to erase" in again.stdout

    # A process that never held the keys in memory: what any reader after the erasure sees.
    engine = create_engine(env.settings.resolved_database_url)
    try:
        codec = settings_converter(env.settings, engine).payload_codec
        assert codec is not None
        alice_payloads, bob_payloads = await payloads_of(env, alice.id), await payloads_of(env, bob.id)
        assert alice_payloads and all(SUBJECT in p.metadata for p in alice_payloads + bob_payloads)
        for payload in alice_payloads:
            with pytest.raises(PayloadDecryptionError, match="erased data subject"):
                await codec.decode([payload])
        assert any(BOB.encode() in p.data for p in await codec.decode(bob_payloads))
        assert len(await codec.decode(await payloads_of(env, nobody.id))) > 0

        async with engine.connect() as conn:
            rows = [
                *(await conn.execute(sa.text("SELECT * FROM data_subject_keys"))).all(),
                *(await conn.execute(sa.text("SELECT * FROM workflow_subjects"))).all(),
            ]
        stored = " ".join(map(str, rows))
        assert "alice" not in stored and "bob" not in stored  # references, never identifiers
    finally:
        await engine.dispose()


async def test_a_sub_process_holds_its_root_runs_subject(env: ProcessEnvironment) -> None:
    run = await env.start(parent_with_subprocess().build(ALLOWED), "Start", "x", data_subject=ALICE)
    assert (await run.result()).output == "x-1-2-3"
    child_id = f"{run.id}/Child/1"
    assert all(SUBJECT in p.metadata for p in await payloads_of(env, child_id))


async def test_orchestrations_name_their_subject_too(env: ProcessEnvironment) -> None:
    run = await env.client.run_sequential(f"File a complaint for {ALICE}", ["DataExtraction"]).start(
        data_subject=ALICE
    )
    await run.result()
    assert all(SUBJECT in p.metadata for p in await payloads_of(env, run.id))


async def test_a_subjects_llm_answers_are_never_cached(env: ProcessEnvironment) -> None:
    async def served_from(question: str, subject: str | None) -> str | None:
        handle = await env.client.start_agent(CLERK, question, data_subject=subject)
        await handle.result()
        history = await handle.fetch_history()
        (completed,) = [e for e in history.events if e.HasField("activity_task_completed_event_attributes")]
        payloads = completed.activity_task_completed_event_attributes.result.payloads
        (response,) = await env.temporal.data_converter.decode(payloads, [LlmResponse])
        return response.cached

    # Temperature 0: answers are cached for everyone, except runs that hold a subject's data.
    assert await served_from("What is open?", None) is None
    assert await served_from("What is open?", None) == "l1"
    assert await served_from("What is open?", "dora") is None  # never served from the cache
    assert await served_from("What is closed?", "erin") is None
    assert await served_from("What is closed?", None) is None  # and never put into it


async def test_a_subject_erased_before_gets_a_new_key_for_new_runs(env: ProcessEnvironment) -> None:
    first = await env.client.start_agent(CLERK, "first", data_subject="carol")
    await first.result()
    assert await env.client.subjects.erase("carol")
    second = await env.client.start_agent(CLERK, "second", data_subject="carol")
    assert (await second.result()).answer.startswith("[simulated")


async def test_a_run_id_belongs_to_one_subject(env: ProcessEnvironment) -> None:
    subjects = env.client.subjects
    first = await subjects.register("process-Claims-key-7", ALICE)
    assert await subjects.register("process-Claims-key-7", ALICE) == first  # the same run key again
    with pytest.raises(ValueError, match="already belongs to another data subject"):
        await subjects.register("process-Claims-key-7", BOB)
    with pytest.raises(ValueError, match="non-empty identifier"):
        await subjects.register("process-Claims-key-8", "  ")

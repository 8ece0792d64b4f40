"""Recorded runs of every workflow type replay through Baton's encrypting data converter.

A workflow change that alters the commands a recorded run made (without `workflow.patched`)
fails here, as it would fail every run in flight in production. The histories in
tests/histories/encrypted were recorded by `python -m tests.test_replay`, sealed with the keyring
beside them: a TEST-ONLY FIXTURE, committed on purpose so that anyone can replay them. It
protects nothing and must never encrypt anything real. Recording again adds the histories that
are missing (a new workflow type, a new patched branch) and never replaces one: histories of
the old code are the point.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.worker import Replayer

from baton.process.runtime import SendEvent
from baton.security.codec import ENCODING
from baton.security.keys import FileKeyProvider, LiveKeyring
from baton.settings import BatonSettings
from baton.starter.client import ORCHESTRATION_WORKFLOWS, BatonClient
from baton.temporal import data_converter
from baton.testing import ProcessEnvironment, start_dev_server
from baton.workflows.agent import AgentWorkflow
from baton.workflows.orchestrations import ORCHESTRATIONS
from baton.workflows.process import ProcessWorkflow
from tests.steps import ALLOWED, linear
from tests.test_durability import assert_replays, record_histories
from tests.test_process_runs import start_unchecked, ticking, wait_for_state

ENCRYPTED = Path(__file__).parent / "histories" / "encrypted"
TEST_ONLY_KEYRING = ENCRYPTED / "TEST-ONLY-keyring.json"
WORKFLOW_TYPES = {"ProcessWorkflow", "AgentWorkflow", *(name for _, name in ORCHESTRATION_WORKFLOWS.values())}


def recorded() -> dict[str, WorkflowHistory]:
    return {
        f.stem: WorkflowHistory.from_json(f.stem, f.read_text())
        for f in sorted(ENCRYPTED.glob("*.json"))
        if f != TEST_ONLY_KEYRING
    }


def converter_with_test_keys(folder: Path) -> DataConverter:
    # Loading a keyring may bring its file up to date: never write to the committed fixture.
    keyring = folder / "keyring.json"
    shutil.copy(TEST_ONLY_KEYRING, keyring)
    return data_converter(LiveKeyring(FileKeyProvider(keyring)))


def payloads(message: Message, path: str = "") -> Iterator[tuple[str, Payload]]:
    """Every payload in a history event, with the path of fields that leads to it."""
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            if field.message_type.fields_by_name["value"].message_type is None:
                continue
            items = list(value.values())
        else:
            items = [value] if isinstance(value, Message) else list(value)
        for item in items:
            if isinstance(item, Payload):
                yield f"{path}{field.name}", item
            else:
                yield from payloads(item, f"{path}{field.name}.")


def event_payloads(event: HistoryEvent) -> list[tuple[str, Payload]]:
    marker = event.marker_recorded_event_attributes
    if marker.marker_name:
        # The SDK's core writes its markers' bookkeeping in plain (patch names, a local activity's
        # sequence number and type); only a local activity's result is the workflow's data.
        return (
            [("marker result", p) for p in marker.details["result"].payloads]
            if "result" in marker.details
            else []
        )
    return list(payloads(event))


def test_every_workflow_type_has_an_encrypted_history() -> None:
    histories = recorded()
    started = {
        h.events[0].workflow_execution_started_event_attributes.workflow_type.name for h in histories.values()
    }
    assert started == WORKFLOW_TYPES
    for workflow_id, history in histories.items():
        found = [(path, p) for event in history.events for path, p in event_payloads(event)]
        assert found, workflow_id
        # Search attributes bypass the codec by design (the server indexes them): process names only.
        plain = {
            path
            for path, p in found
            if p.metadata.get("encoding") != ENCODING and ".search_attributes." not in path
        }
        assert not plain, f"{workflow_id}: payloads at {plain} are not encrypted"


async def test_encrypted_histories_replay_through_batons_converter(tmp_path: Path) -> None:
    await assert_replays(
        {workflow_id: h.to_json() for workflow_id, h in recorded().items()},
        converter_with_test_keys(tmp_path),
    )


async def test_replay_reads_the_payloads_so_another_key_cannot(tmp_path: Path) -> None:
    # The control: replay decrypts every input and result, so a wrong key fails it.
    other = data_converter(LiveKeyring(FileKeyProvider(tmp_path / "other-keyring.json")))
    replayer = Replayer(workflows=[ProcessWorkflow, AgentWorkflow, *ORCHESTRATIONS], data_converter=other)
    result = await replayer.replay_workflow(
        recorded()["process-Approval-recorded"], raise_on_replay_failure=False
    )
    assert result.replay_failure is not None


async def record_patched_paths(env: ProcessEnvironment) -> dict[str, str]:
    """Runs that take the branches added with `workflow.patched` since the first recordings."""
    run = await start_unchecked(env, ticking(max_supersteps=2).build(ALLOWED), "Tick", "t0", key="recorded")
    for tick in (1, 2):
        await wait_for_state(
            run, lambda s, n=tick: s.status == "waiting" and s.steps["Reverse"].run_count == n
        )
        await run.send_event("Tick", f"t{tick}")  # past max_supersteps in all, never in one stretch
    await run.handle.signal(ProcessWorkflow.send_event_signal, SendEvent(name="Tick", data={"not": "text"}))
    await wait_for_state(run, lambda s: s.status == "waiting" and s.steps["Reverse"].run_count == 3)
    await run.send_event("Stop", "done")
    # Steps scheduled by activity types of their own (BATON_STEP_ACTIVITY_TYPES), remote and local.
    typed = BatonClient(env.temporal, env.settings.model_copy(update={"step_activity_types": True}))
    runs = [
        run,
        await typed.start_process(linear().build(ALLOWED), "Start", "x", key="recorded-step-types"),
        await typed.start_process(
            linear("LocalSteps", local=True).build(ALLOWED), "Start", "x", key="recorded"
        ),
    ]
    histories = {}
    for each in runs:
        await each.result()
        histories[each.id] = (await each.handle.fetch_history()).to_json()
    return histories


async def _record() -> None:
    os.environ.setdefault("BATON_TEST_JOURNAL", "/dev/null")
    data_dir = Path(tempfile.mkdtemp(prefix="baton-record-"))
    ENCRYPTED.mkdir(parents=True, exist_ok=True)
    FileKeyProvider(TEST_ONLY_KEYRING).load()  # created on the first recording, then reused
    shutil.copy(TEST_ONLY_KEYRING, data_dir / "keyring.json")
    # Nothing out of band: replaying must need the keyring only, not a payload store.
    settings = BatonSettings(step_modules=ALLOWED, data_dir=data_dir, payload_offload_bytes=2**31)
    temporal = await start_dev_server()
    async with temporal, ProcessEnvironment(settings=settings, client=temporal.client) as env:
        histories = await record_histories(env) | await record_patched_paths(env)
    for workflow_id, history in histories.items():
        path = ENCRYPTED / f"{workflow_id}.json"
        if not path.exists():  # the histories there are the old code's commands: never replaced
            path.write_text(history)


if __name__ == "__main__":
    # Record the histories this file replays: python -m tests.test_replay
    asyncio.run(_record())
    os._exit(0)  # skip interpreter teardown, which the SDK's threads can crash (sdk-python issue 300)

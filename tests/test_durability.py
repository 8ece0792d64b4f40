"""What must survive: a worker killed mid-run, and workflow code replaying recorded histories."""

from __future__ import annotations

import asyncio
import importlib
import os
import re
import shutil
import signal
import sys
import tempfile
import types
import unittest.mock
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.exceptions import CancelledError
from temporalio.worker import Replayer, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox._importer import Importer

import baton
from baton.agents.runtime import AgentRunInput
from baton.examples.document_generation.process import process as document_generation
from baton.orchestration import GroupChatInput, ManagerSpec
from baton.persistence.db import create_engine
from baton.security.keys import FileKeyProvider, LiveKeyring
from baton.settings import BatonSettings
from baton.starter.client import ORCHESTRATION_WORKFLOWS, BatonClient
from baton.temporal import data_converter, settings_converter
from baton.testing import ProcessEnvironment, start_dev_server
from baton.workflows.agent import AgentWorkflow
from baton.workflows.orchestrations import ORCHESTRATIONS
from baton.workflows.process import ProcessWorkflow
from tests.conftest import Journal, baton_worker
from tests.steps import (
    ALLOWED,
    approval_process,
    failing,
    fan_out_fan_in,
    linear,
    parent_with_subprocess,
    queued_fan_in,
)

HISTORIES = Path(__file__).parent / "histories"
RECORDING_KEYS = HISTORIES / "keyring.json"


async def wait_until(predicate, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_worker_killed_mid_run_does_not_rerun_finished_steps(
    temporal, baton_temporal, settings, journal: Journal
) -> None:
    # The step heartbeats by itself: once the worker is gone, 2 s of silence hands it to another.
    process = linear("Crash", heartbeat_timeout=timedelta(seconds=2)).build(ALLOWED)
    gate = settings.data_dir / "gate"
    gate.parent.mkdir(parents=True, exist_ok=True)
    gate.touch()
    worker = baton_worker(
        temporal.client.service_client.config.target_host,
        settings,
        [settings.workflows_queue],  # steps run there too
        BATON_TEST_JOURNAL=str(journal.path),
        BATON_TEST_GATE=str(gate),  # holds Step2 until the gate is removed
    )
    try:
        run = await BatonClient(baton_temporal, settings).start_process(process, "Start", "x")
        await wait_until(lambda: journal.count("step-2") == 1)
        worker.send_signal(signal.SIGKILL)  # no goodbye: the process is gone mid-step
        worker.wait(10)
    finally:
        worker.kill()
    gate.unlink()
    assert journal.entries() == ["step-1", "step-2"]

    async with ProcessEnvironment(settings=settings, client=temporal.client):
        result = await run.result()
    assert result.output == "x-1-2-3"
    assert journal.count("step-1") == 1  # finished before the crash: not run again
    assert journal.count("step-2") == 2  # cut off by the crash: run again, once its heartbeat stopped
    assert journal.count("step-3") == 1
    assert result.run_counts == {"Step1": 1, "Step2": 1, "Step3": 1}


WORKFLOW_CODE = (
    "baton.agents.loop",
    "baton.agents.access",
    "baton.process.runtime",
    "baton.orchestration.chat",
    "baton.orchestration.managers",
    "baton.telemetry.logs",
)
"""Baton's modules whose functions run inside its workflows: the agent loop, the access check, the
event checks, the group chat and its managers, the agent log record. The workflow modules pass
them through to the sandbox, which then would not see what they call; the replays import them
inside it."""


async def assert_replays(
    histories: dict[str, str],
    converter: DataConverter,
    workflows: Sequence[type] = (ProcessWorkflow, AgentWorkflow, *ORCHESTRATIONS),
    workflow_code: Sequence[str] = WORKFLOW_CODE,
) -> None:
    """Every history replays without a nondeterminism error, and in the sandbox: the workflows
    that run without it in production (ProcessWorkflow, AgentWorkflow) are checked by its
    restrictions here (no clock, randomness, I/O or threads outside Temporal's), and so is the
    code of `workflow_code` they call."""
    replayer = Replayer(
        workflows=workflows,
        data_converter=converter,
        unsandboxed_workflow_runner=SandboxedWorkflowRunner(),
    )
    passthrough = Importer._maybe_passthrough_module

    def imported_inside(importer: Importer, name: str) -> types.ModuleType | None:
        return None if name in workflow_code else passthrough(importer, name)

    # The sandbox's imports set their packages' attributes (baton.telemetry.logs) to its copies:
    # put the test process's own modules back, or later imports there would get the copies.
    packages = {name: sys.modules[name.rpartition(".")[0]] for name in workflow_code}
    own = {name: getattr(package, name.rpartition(".")[2], None) for name, package in packages.items()}
    try:
        with unittest.mock.patch.object(Importer, "_maybe_passthrough_module", imported_inside):
            for workflow_id, history in histories.items():
                result = await replayer.replay_workflow(
                    WorkflowHistory.from_json(workflow_id, history), raise_on_replay_failure=False
                )
                assert result.replay_failure is None, f"{workflow_id}: {result.replay_failure}"
    finally:
        for name, module in own.items():
            if module is None:
                vars(packages[name]).pop(name.rpartition(".")[2], None)
            else:
                setattr(packages[name], name.rpartition(".")[2], module)


async def test_recorded_histories_replay(tmp_path: Path) -> None:
    """Histories committed under tests/histories still replay: workflow changes must not break them.

    Those recorded before payload encryption are plain; later ones are encrypted with the test
    keyring committed beside them (RECORDING_KEYS, test data only)."""
    histories = {f.stem: f.read_text() for f in sorted(HISTORIES.glob("*-recorded*.json"))}
    assert len(histories) == 14
    # A copy: reading a keyring written before the derivation secret upgrades the file.
    keys = Path(shutil.copy(RECORDING_KEYS, tmp_path / "keyring.json"))
    await assert_replays(histories, data_converter(LiveKeyring(FileKeyProvider(keys))))


def test_every_module_using_the_workflow_api_is_replayed_inside_the_sandbox() -> None:
    package = Path(baton.__file__).parent
    using = {
        "baton." + ".".join(path.relative_to(package).with_suffix("").parts)
        for path in package.rglob("*.py")
        if "workflows" not in path.relative_to(package).parts
        and re.search(r"^from temporalio import .*\bworkflow\b", path.read_text(), re.MULTILINE)
    }
    assert using and using <= set(WORKFLOW_CODE)
    assert all(importlib.import_module(name) for name in WORKFLOW_CODE)  # no stale name checks nothing


async def test_the_replays_catch_a_workflow_outside_the_sandbox_reading_the_clock(temporal) -> None:
    """The check that stands in for the sandbox where Baton's workflows run without it."""
    from tests.clockwork import ReadsTheClock

    async with Worker(temporal.client, task_queue="clockwork", workflows=[ReadsTheClock]):
        handle = await temporal.client.start_workflow(
            ReadsTheClock.run, id="clockwork", task_queue="clockwork"
        )
        assert await handle.result() > 0  # runs fine: nothing stops it outside the sandbox
    history = await handle.fetch_history()
    with pytest.raises(AssertionError, match=r"clockwork: .*time\.time"):
        await assert_replays(
            {"clockwork": history.to_json()}, temporal.client.data_converter, [ReadsTheClock]
        )


async def test_the_replays_catch_the_clock_read_in_code_passed_through_to_the_workflow(temporal) -> None:
    """As the agent loop is: imported under `imports_passed_through`, called from the workflow."""
    from tests.clockwork import ReadsTheClockElsewhere

    async with Worker(temporal.client, task_queue="clockwork", workflows=[ReadsTheClockElsewhere]):
        handle = await temporal.client.start_workflow(
            ReadsTheClockElsewhere.run, id="clockwork-elsewhere", task_queue="clockwork"
        )
        assert await handle.result() > 0
    history = {"clockwork-elsewhere": (await handle.fetch_history()).to_json()}
    converter = temporal.client.data_converter
    await assert_replays(history, converter, [ReadsTheClockElsewhere], workflow_code=())  # unseen
    with pytest.raises(AssertionError, match=r"clockwork-elsewhere: .*time\.time"):
        await assert_replays(history, converter, [ReadsTheClockElsewhere], workflow_code=["tests.clock"])


async def record_histories(env: ProcessEnvironment) -> dict[str, str]:
    """Run one process of each shape and return their histories as JSON, by workflow ID."""
    runs = {
        "linear": await env.start(linear().build(ALLOWED), "Start", "x", key="recorded"),
        "fan_out_fan_in": await env.start(fan_out_fan_in().build(ALLOWED), "Start", "abc", key="recorded"),
        "subprocess": await env.start(parent_with_subprocess().build(ALLOWED), "Start", "x", key="recorded"),
        "error_route": await env.start(
            failing(with_error_route=True).build(ALLOWED), "Start", "x", key="recorded"
        ),
        "queued_fan_in": await env.start(queued_fan_in().build(ALLOWED), "Left", "a1", key="recorded"),
        "approval": await env.start(approval_process().build(ALLOWED), "Start", "doc", key="recorded"),
        "document_generation": await env.start(
            document_generation, "Start", {"name": "Baton"}, key="recorded-agents"
        ),
    }
    for name, data in [("Left", "a2"), ("Right", "b1"), ("Right", "b2")]:
        await runs["queued_fan_in"].send_event(name, data)
    await runs["approval"].send_event("ApprovalReceived", {"approved": True})
    await runs["document_generation"].send_event("ApprovalReceived", {"approved": True, "comment": "ok"})
    histories = {}
    for run in runs.values():
        await run.result()
        histories[run.id] = (await run.handle.fetch_history()).to_json()
    agent = await env.temporal.start_workflow(
        AgentWorkflow.run,
        AgentRunInput(
            agent=env.client.agents["MarketAnalysis"], input="robotics", llm_queue=env.settings.llm_queue
        ),
        id="agent-MarketAnalysis-recorded",
        task_queue=env.settings.workflows_queue,
    )
    await agent.result()
    histories[agent.id] = (await agent.fetch_history()).to_json()
    baton = env.client
    team = ["Developer", "QA", "BusinessAnalyst"]
    orchestrations = [
        baton.run_sequential("Q3 numbers", ["DataExtraction", "Analysis", "ReportGeneration"]),
        baton.run_concurrent(
            "EV chargers", ["MarketAnalysis", "TrendAnalysis"], aggregator="ReportGeneration"
        ),
        baton.run_group_chat(
            "Plan OAuth login",
            team,
            manager=ManagerSpec(kind="llm", agent=baton.agents["ProjectManager"], ask_human_every=2),
        ),
        baton.run_handoff("Refund order 1042", ["Developer", "QA"]),
        baton.run_magentic("Assess home batteries", ["MarketAnalysis", "TrendAnalysis"]),
    ]
    for pending in orchestrations:
        run = await pending.start()
        if isinstance(pending.input, GroupChatInput):
            while (await run.progress()).waiting_for is None:
                await asyncio.sleep(0.05)
            await run.reply("Keep it small")
        await run.result()
        pattern, _ = ORCHESTRATION_WORKFLOWS[type(pending.input)]
        histories[f"orchestration-{pattern}-recorded"] = (await run.handle.fetch_history()).to_json()
    return histories


async def test_fresh_histories_replay(env: ProcessEnvironment) -> None:
    """Fresh histories are encrypted: the replayer reads them with the run's keys."""
    engine = create_engine(env.settings.resolved_database_url)
    try:
        await assert_replays(await record_histories(env), settings_converter(env.settings, engine))
    finally:
        await engine.dispose()


async def _write_recorded_histories() -> None:
    temporal = await start_dev_server()
    os.environ.setdefault("BATON_TEST_JOURNAL", "/dev/null")
    data_dir = Path(tempfile.mkdtemp(prefix="baton-record-"))
    FileKeyProvider(RECORDING_KEYS).load()  # created on the first recording, then reused
    shutil.copy(RECORDING_KEYS, data_dir / "keyring.json")
    settings = BatonSettings(step_modules=ALLOWED, data_dir=data_dir)
    async with temporal, ProcessEnvironment(settings=settings, client=temporal.client) as env:
        HISTORIES.mkdir(exist_ok=True)
        for workflow_id, history in (await record_histories(env)).items():
            (HISTORIES / f"{workflow_id}.json").write_text(history)


if __name__ == "__main__":
    # Record the histories that test_recorded_histories_replay guards: python -m tests.test_durability
    asyncio.run(_write_recorded_histories())
    os._exit(0)  # skip interpreter teardown, which the SDK's threads can crash (sdk-python issue 300)


async def test_cancelling_a_process_cancels_its_running_step(
    env: ProcessEnvironment, journal: Journal, monkeypatch
) -> None:
    gate = env.settings.data_dir / "gate"
    gate.parent.mkdir(parents=True, exist_ok=True)
    gate.touch()
    monkeypatch.setenv("BATON_TEST_GATE", str(gate))
    run = await env.start(
        linear("Cancelled", heartbeat_timeout=timedelta(seconds=1)).build(ALLOWED), "Start", "x"
    )
    await wait_until(lambda: journal.count("step-2") == 1)
    await run.cancel()
    with pytest.raises(WorkflowFailureError) as raised:
        await run.result()
    assert isinstance(raised.value.cause, CancelledError)
    assert (await run.state()).status == "cancelled"
    # The running step learns of it through its heartbeat and stops: it never finishes.
    await wait_until(lambda: journal.count("step-2-cancelled") == 1)
    assert journal.count("step-3") == 0

"""Processes running on the Temporal dev server: routing, fan-out/in, cycles, events, errors."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from pydantic import ValidationError
from temporalio.api.enums.v1 import RetryState
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from baton.examples.document_generation.process import process as document_generation
from baton.process import Process, ProcessBuilder, ProcessState, RetryOptions
from baton.process.model import StepOptions
from baton.process.runtime import BATON_PROCESS, ProcessInput, SendEvent
from baton.starter import InvalidEventData, ProcessFinished, ProcessRun, RunAlreadyExists, UnknownEvent
from baton.testing import ProcessEnvironment
from baton.workers.worker import build_workers
from baton.workflows.process import ProcessWorkflow
from tests.conftest import Journal
from tests.steps import (
    ALLOWED,
    PACE,
    Approval,
    Reverse,
    SchedulesAnActivity,
    Step1,
    Step3,
    Upper,
    approval_process,
    busy_loop_with_pokes,
    cycle,
    failing,
    fan_out_fan_in,
    linear,
    parent_with_subprocess,
    queued_fan_in,
    riding_out_an_outage,
    spinner,
)


async def wait_for_state(run: ProcessRun, predicate, timeout: float = 20.0) -> ProcessState:
    """Poll the state query until `predicate` holds (queries are how users watch runs)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        state = await run.state()
        if predicate(state):
            return state
        assert loop.time() < deadline, f"state never matched; last: {state}"
        await asyncio.sleep(0.05)


async def start_unchecked(
    env: ProcessEnvironment, process: Process, event: str, data: object, key: str = "", **options: object
) -> ProcessRun:
    """Start a run past the client's checks, with workflow options the client does not offer."""
    handle = await env.temporal.start_workflow(
        ProcessWorkflow.run,
        ProcessInput(
            process=process.compiled, event=event, data=data, steps_queue=env.settings.steps_queue, **options
        ),
        id=f"process-{process.name}-{key or uuid.uuid4()}",
        task_queue=env.settings.workflows_queue,
    )
    return env.client.get_run(handle.id)


def ticking(max_supersteps: int) -> ProcessBuilder:
    """A long-lived process: every Tick runs two supersteps (Upper, then Reverse); Stop ends it."""
    b = ProcessBuilder("Ticking", max_supersteps=max_supersteps)
    upper, reverse = b.add_step(Upper), b.add_step(Reverse)
    b.on_input_event("Tick").send_event_to(upper)
    upper.on_function_result().send_event_to(reverse)
    b.on_input_event("Stop").stop_process()
    return b


async def test_linear_process_runs_each_step_once(env: ProcessEnvironment, journal: Journal) -> None:
    process = linear().build(ALLOWED)
    run = await env.start(process, "Start", "x", key="linear-1")
    result = await run.result()
    assert result.output == "x-1-2-3"
    assert result.supersteps == 3
    assert result.run_counts == {"Step1": 1, "Step2": 1, "Step3": 1}
    assert journal.entries() == ["step-1", "step-2", "step-3"]
    assert run.id == "process-Linear-linear-1"
    state = await run.state()
    assert state.status == "completed" and state.output == "x-1-2-3"
    assert state.steps["Step1"].state == {"calls": 1, "seen": ["x"]}


@pytest.mark.parametrize("typed", [False, True], ids=["baton.run_step", "step-activity-types"])
async def test_run_is_tagged_and_its_steps_named_for_the_temporal_ui(
    temporal, settings, journal: Journal, typed: bool
) -> None:
    settings = settings.model_copy(update={"step_activity_types": typed})
    async with ProcessEnvironment(settings=settings, client=temporal.client) as env:
        run = await env.start(parent_with_subprocess().build(ALLOWED), "Start", "x")
        await run.result()
        description = await run.handle.describe()
        events = [e async for e in run.handle.fetch_history_events()]
        [child] = [
            e.start_child_workflow_execution_initiated_event_attributes.workflow_id
            for e in events
            if e.HasField("start_child_workflow_execution_initiated_event_attributes")
        ]
        events += [e async for e in env.temporal.get_workflow_handle(child).fetch_history_events()]
        scheduled = [e for e in events if e.HasField("activity_task_scheduled_event_attributes")]
        types = [e.activity_task_scheduled_event_attributes.activity_type.name for e in scheduled]
        summaries = [e.user_metadata.summary for e in scheduled if e.HasField("user_metadata")]
        [invocation] = await env.temporal.data_converter.decode(
            scheduled[0].activity_task_scheduled_event_attributes.input.payloads, [dict]
        )
        named = await env.temporal.data_converter.decode(summaries, [str] * len(summaries))
    assert description.typed_search_attributes.get(BATON_PROCESS) == "Parent"
    if typed:
        # Each step function is an activity type of its own, in the UI and the SDK's activity
        # metrics, in the sub-process too; no summary repeats it, nor the input.
        assert types == ["Step3/run", "Step1/run", "Step2/run"]
        assert named == []
        assert set(invocation) == {"process_name", "ref", "args"}
    else:
        # Summaries are encrypted like every payload; Baton's converter reads them.
        assert types == ["baton.run_step"] * 3
        assert named == ["Step3.run", "Step1.run", "Step2.run"]
        assert set(invocation) == {"process_name", "step", "ref", "function", "args"}


async def test_fan_out_then_fan_in(env: ProcessEnvironment) -> None:
    result = await (await env.start(fan_out_fan_in().build(ALLOWED), "Start", "abc")).result()
    assert result.output == "ABC+cba"
    assert result.supersteps == 2  # Upper and Reverse ran side by side


async def test_fan_in_queues_inputs_instead_of_overwriting(env: ProcessEnvironment) -> None:
    run = await env.start(queued_fan_in().build(ALLOWED), "Left", "a1")
    await run.send_event("Left", "a2")
    state = await wait_for_state(run, lambda s: len(s.pending) == 2)
    assert state.status == "waiting"
    assert [m.data for m in state.pending] == ["a1", "a2"]
    await run.send_event("Right", "b1")
    await run.send_event("Right", "b2")
    result = await run.result()
    assert result.output == ["a1+b1", "a2+b2"]
    assert result.run_counts["Join"] == 2


async def test_a_cycle_ends_by_itself(env: ProcessEnvironment) -> None:
    result = await (await env.start(cycle().build(ALLOWED), "Start", 1)).result()
    assert result.output == {"laps": 5}
    assert result.supersteps == 5


async def test_a_cycle_past_max_supersteps_fails_clearly(env: ProcessEnvironment) -> None:
    run = await env.start(cycle(max_supersteps=3).build(ALLOWED), "Start", 1)
    with pytest.raises(WorkflowFailureError) as raised:
        await run.result()
    cause = raised.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "MaxSuperstepsExceeded"
    assert "ran more than max_supersteps=3 supersteps since its last external event" in cause.message
    assert (await run.state()).status == "failed"


async def test_max_supersteps_bounds_each_stretch_of_work_not_the_whole_life(env: ProcessEnvironment) -> None:
    # An event-driven process that lives for months runs far more supersteps than max_supersteps
    # in all; the bound is for one stretch of work between waits. It continues as new after every
    # superstep here, as Temporal would ask of a long history, and keeps what it knows.
    run = await start_unchecked(
        env, ticking(max_supersteps=3).build(ALLOWED), "Tick", "t0", continue_as_new_after=1
    )
    await run.handle.signal(ProcessWorkflow.send_event_signal, SendEvent(name="Bogus"))
    for tick in range(1, 5):
        await wait_for_state(
            run, lambda s, n=tick: s.status == "waiting" and s.steps["Reverse"].run_count == n
        )
        await run.send_event("Tick", f"t{tick}")
    await wait_for_state(run, lambda s: s.status == "waiting" and s.steps["Reverse"].run_count == 5)
    await run.send_event("Stop", "done")
    result = await run.result()
    assert result.output == "done" and result.supersteps == 10
    assert (await run.state()).rejected_events == ["Bogus"]  # carried through every continue-as-new


async def test_every_external_event_starts_a_new_stretch_of_work(env: ProcessEnvironment) -> None:
    # A process kept busy by a loop is not a runaway while people keep sending it events: each
    # one is progress from outside. It never waits here, and runs twice max_supersteps.
    run = await env.start(busy_loop_with_pokes(max_supersteps=3).build(ALLOWED), "Start", 1)
    for _ in range(6):
        await run.send_event("Poke", "x")  # in the run's pending messages before the lap ends
        PACE.put_nowait(None)
    result = await run.result()
    assert result.output == 7 and result.run_counts["PacedLap"] == 6
    # The last poke may have come with the last lap, and the stop route left it unconsumed.
    assert result.run_counts["Upper"] + len(result.unconsumed) == 6


async def test_a_runaway_cycle_is_caught_across_continue_as_new(env: ProcessEnvironment) -> None:
    run = await start_unchecked(
        env, cycle(max_supersteps=3).build(ALLOWED), "Start", 1, continue_as_new_after=1
    )
    with pytest.raises(WorkflowFailureError) as raised:
        await run.result()
    cause = raised.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "MaxSuperstepsExceeded"
    assert "more than max_supersteps=3 supersteps since its last external event" in cause.message


async def test_continue_as_new_keeps_state_and_messages(env: ProcessEnvironment) -> None:
    process = cycle().build(ALLOWED)
    # Continue as new after every second superstep, as Temporal would ask of a long history.
    handle = await env.temporal.start_workflow(
        ProcessWorkflow.run,
        ProcessInput(
            process=process.compiled,
            event="Start",
            data=1,
            steps_queue=env.settings.steps_queue,
            continue_as_new_after=2,
        ),
        id="process-Cycle-continue-as-new",
        task_queue=env.settings.workflows_queue,
    )
    result = await handle.result()
    assert result.output == {"laps": 5} and result.supersteps == 5
    assert result.run_counts == {"Lap": 5}
    final = await handle.describe()
    assert final.run_id != handle.first_execution_run_id
    first = env.temporal.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
    events = [e async for e in first.fetch_history_events()]
    assert events[-1].HasField("workflow_execution_continued_as_new_event_attributes")


async def test_undeclared_event_is_rejected_by_name(env: ProcessEnvironment) -> None:
    run = await env.start(approval_process().build(ALLOWED), "Start", "doc")
    with pytest.raises(UnknownEvent) as raised:
        await run.send_event("NoSuchEvent", {"approved": True})
    assert str(raised.value) == (
        "process 'Approval' does not accept event 'NoSuchEvent'; it accepts: Start, ApprovalReceived"
    )
    assert raised.value.event == "NoSuchEvent" and raised.value.accepted == ["Start", "ApprovalReceived"]
    with pytest.raises(UnknownEvent, match="does not accept event 'Go'; it accepts: Start, ApprovalReceived"):
        await env.start(approval_process().build(ALLOWED), "Go", "doc")
    accepted = await run.send_event("ApprovalReceived", {"approved": True})
    assert accepted.deliveries == 1
    assert (await run.result()).output == "DOC:approved"
    with pytest.raises(ProcessFinished, match="process 'Approval' has finished"):
        await run.send_event("ApprovalReceived", {"approved": True})


async def test_malformed_event_data_is_refused_at_the_door_naming_the_field(env: ProcessEnvironment) -> None:
    run = await env.start(approval_process().build(ALLOWED), "Start", "doc")
    await wait_for_state(run, lambda s: s.status == "waiting")
    with pytest.raises(InvalidEventData) as refused:
        await run.send_event("ApprovalReceived", {"approve": True})
    assert refused.value.event == "ApprovalReceived"
    assert refused.value.problems == ["Gate.decide, parameter 'approval': approved: required field missing"]
    with pytest.raises(InvalidEventData, match="approved: expected a boolean, got an integer"):
        await run.send_event("ApprovalReceived", {"approved": 2})
    # Nothing reached the process: it still waits, and a well-formed reply (a model, too) goes through.
    state = await run.state()
    assert state.status == "waiting" and [m.target.parameter for m in state.pending] == ["value"]
    await run.send_event("ApprovalReceived", Approval(approved=True))
    assert (await run.result()).output == "DOC:approved"
    updates = [
        e
        async for e in run.handle.fetch_history_events()
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    ]
    assert len(updates) == 1


async def test_malformed_data_of_a_plain_parameter_is_refused(env: ProcessEnvironment) -> None:
    run = await env.start(queued_fan_in().build(ALLOWED), "Left", "a1")
    with pytest.raises(InvalidEventData) as refused:
        await run.send_event("Right", 5)
    assert str(refused.value) == (
        "the data of event 'Right' does not fit process 'QueuedFanIn': "
        "Join.join, parameter 'right': expected a string, got an integer"
    )
    await run.send_event("Right", "b1")
    await run.send_event("Left", "a2")
    await run.send_event("Right", "b2")
    assert (await run.result()).output == ["a1+b1", "a2+b2"]


async def test_start_data_is_checked_before_the_run_starts(env: ProcessEnvironment) -> None:
    with pytest.raises(
        InvalidEventData, match=r"Upper\.run, parameter 'value': expected a string, got an integer"
    ):
        await env.start(approval_process("CheckedStart").build(ALLOWED), "Start", 42, key="checked")
    with pytest.raises(InvalidEventData, match=r"Child.Begin \(sub-process\) Step1.run, parameter 'value'"):
        await env.start(parent_with_subprocess().build(ALLOWED), "Start", {"x": 1})
    assert [w async for w in env.temporal.list_workflows("WorkflowId = 'process-CheckedStart-checked'")] == []


async def test_signal_twin_drops_undeclared_events_visibly(env: ProcessEnvironment) -> None:
    run = await env.start(approval_process().build(ALLOWED), "Start", "doc")
    await run.handle.signal(ProcessWorkflow.send_event_signal, SendEvent(name="Bogus"))
    await run.handle.signal(
        ProcessWorkflow.send_event_signal, SendEvent(name="ApprovalReceived", data={"approve": True})
    )
    await run.handle.signal(
        ProcessWorkflow.send_event_signal, SendEvent(name="ApprovalReceived", data={"approved": False})
    )
    assert (await run.result()).output == "DOC:rejected"
    assert (await run.state()).rejected_events == ["Bogus", "ApprovalReceived"]


async def test_step_state_is_visible_while_the_process_waits(env: ProcessEnvironment) -> None:
    run = await env.start(document_generation, "Start", {"name": "Baton", "features": ["durable"]})
    state = await wait_for_state(run, lambda s: s.status == "waiting")
    generate = state.steps["GenerateDocumentation"]
    assert generate.run_count == 6  # generate, 2 revisions, and recording 3 drafts
    assert generate.state is not None and generate.state["revision_count"] == 2
    assert state.steps["Writer"].run_count == 3
    assert [m.target.parameter for m in state.pending] == ["draft"]
    assert "## Troubleshooting" in state.pending[0].data["text"]
    await run.send_event("ApprovalReceived", {"approved": True, "comment": "ship it"})
    output = (await run.result()).output
    assert output["approval_comment"] == "ship it" and output["revision"] == 2


async def test_rejection_loops_back_for_another_revision(env: ProcessEnvironment) -> None:
    run = await env.start(document_generation, "Start", {"name": "Baton"})
    await wait_for_state(run, lambda s: s.status == "waiting")
    await run.send_event("ApprovalReceived", {"approved": False, "comment": "Security"})
    state = await wait_for_state(
        run,
        lambda s: (
            s.status == "waiting"
            and s.steps["HumanApproval"].run_count == 1
            and s.steps["ReviewDocumentation"].run_count == 8
        ),
    )
    assert state.steps["GenerateDocumentation"].state["requested_sections"][-1] == "Security"
    await run.send_event("ApprovalReceived", {"approved": True})
    output = (await run.result()).output
    assert output["revision"] == 3 and "## Security" in output["text"]


async def test_retries_then_failure_without_error_route(env: ProcessEnvironment, journal: Journal) -> None:
    run = await env.start(failing(with_error_route=False).build(ALLOWED), "Start", "x")
    with pytest.raises(WorkflowFailureError) as raised:
        await run.result()
    cause = raised.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "StepFailed"
    assert cause.message == "step Flaky.run failed: ValueError: cannot handle 'x'"
    assert journal.entries() == ["flaky-attempt-1", "flaky-attempt-2", "flaky-attempt-3"]


async def test_a_step_with_a_retry_window_rides_out_an_outage(
    env: ProcessEnvironment, journal: Journal
) -> None:
    """Three attempts (the default) would fail it; a window keeps retrying until the service is back."""
    window = RetryOptions(
        max_attempts=None, window_seconds=60, initial_interval_seconds=0.1, maximum_interval_seconds=0.2
    )
    run = await env.start(riding_out_an_outage(window).build(ALLOWED), "Start", "x")
    assert (await run.result()).output == "x-served"
    assert journal.count("outage-attempt-6") == 1 and journal.count("outage-attempt-4") == 1


def test_retry_options_must_bound_retries_and_hold_an_attempt() -> None:
    with pytest.raises(ValidationError, match="set max_attempts or window_seconds"):
        RetryOptions(max_attempts=None)
    with pytest.raises(
        ValidationError, match=r"retry.window_seconds \(10.0\) is shorter than timeout_seconds"
    ):
        StepOptions(retry=RetryOptions(window_seconds=10), timeout_seconds=60)


async def test_error_route_fires_once_retries_are_exhausted(
    env: ProcessEnvironment, journal: Journal
) -> None:
    result = await (await env.start(failing(with_error_route=True).build(ALLOWED), "Start", "x")).result()
    assert result.output == {
        "recovered": True,
        "failure": {
            "step": "Flaky",
            "function": "run",
            "error_type": "ValueError",
            "message": "cannot handle 'x'",
        },
    }
    assert journal.count("flaky-attempt-3") == 1 and journal.count("flaky-attempt-4") == 0


async def test_bad_step_input_fails_at_once(env: ProcessEnvironment) -> None:
    b = ProcessBuilder("BadInput")
    s = b.add_step(Step1)
    b.on_input_event("Start").send_event_to(s)
    s.on_function_result().stop_process()
    # Past the client's check of the start data, as data from a step of another version could be.
    run = await start_unchecked(env, b.build(ALLOWED), "Start", {"email": "alice@example.com"})
    with pytest.raises(WorkflowFailureError) as raised:
        await run.result()
    message = str(raised.value.cause)
    assert (
        "StepInputInvalid: input 'value' of Step1.run is invalid: value: Input should be a valid string"
        in message
    )
    assert "alice@example.com" not in message  # failures are not encrypted yet: no values in them
    events = [e async for e in run.handle.fetch_history_events()]
    started = [
        e.activity_task_started_event_attributes
        for e in events
        if e.HasField("activity_task_started_event_attributes")
    ]
    failed = [
        e.activity_task_failed_event_attributes
        for e in events
        if e.HasField("activity_task_failed_event_attributes")
    ]
    assert [a.attempt for a in started] == [1]  # no retries for input that cannot become valid
    assert [f.retry_state for f in failed] == [RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE]


async def test_subprocess_runs_as_a_child_workflow(env: ProcessEnvironment) -> None:
    run = await env.start(parent_with_subprocess().build(ALLOWED), "Start", "x")
    result = await run.result()
    assert result.output == "x-1-2-3"
    children = [
        e.child_workflow_execution_started_event_attributes.workflow_execution.workflow_id
        async for e in run.handle.fetch_history_events()
        if e.HasField("child_workflow_execution_started_event_attributes")
    ]
    assert children == [f"{run.id}/Child/1"]
    child = await env.client.get_run(children[0]).result()
    assert child.output == "x-1-2"


async def test_local_steps_and_own_task_queues(temporal, settings, journal: Journal) -> None:
    b = ProcessBuilder("Placement")
    s1 = b.add_step(Step1, local=True)
    s3 = b.add_step(Step3, task_queue=f"{settings.workflows_queue}-heavy")
    b.on_input_event("Start").send_event_to(s1)
    s1.on_function_result().send_event_to(s3)
    s3.on_function_result().stop_process()
    process = b.build(ALLOWED)
    async with ProcessEnvironment([process], settings=settings, client=temporal.client) as env:
        run = await env.start(process, "Start", "x")
        assert (await run.result()).output == "x-1-3"
        events = [e async for e in run.handle.fetch_history_events()]
    assert any(e.HasField("marker_recorded_event_attributes") for e in events)  # the local activity
    queues = [
        e.activity_task_scheduled_event_attributes.task_queue.name
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert queues == [f"{settings.workflows_queue}-heavy"]


@pytest.mark.parametrize("own_fleet", [False, True], ids=["default", "steps-queue-set"])
async def test_steps_run_on_the_workflows_queue_unless_a_steps_queue_is_set(
    temporal, settings, journal: Journal, own_fleet: bool
) -> None:
    if own_fleet:
        settings = settings.model_copy(update={"steps_queue": f"{settings.workflows_queue}-steps"})
    process = linear("Layout").build(ALLOWED)
    async with ProcessEnvironment(settings=settings, client=temporal.client) as env:
        run = await env.start(process, "Start", "x")
        assert (await run.result()).output == "x-1-2-3"
        events = [e async for e in run.handle.fetch_history_events()]
        started = events[0].workflow_execution_started_event_attributes.input.payloads
        (input,) = await env.temporal.data_converter.decode(started, [ProcessInput])
    queues = {
        e.activity_task_scheduled_event_attributes.task_queue.name
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
    }
    assert queues == {settings.resolved_steps_queue}
    assert settings.resolved_steps_queue == (settings.steps_queue if own_fleet else settings.workflows_queue)
    # The input names the queue, as a string: workers of a release whose input required one
    # (before steps ran on the workflows queue) still run what this one starts, mid-rollout.
    assert input.steps_queue == settings.resolved_steps_queue


async def test_a_run_whose_first_steps_an_earlier_worker_scheduled_keeps_their_activity_type(
    temporal, settings, journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A worker of an earlier release does not know the input's `step_activity_types` (it ignores
    # it) and schedules `baton.run_step`.
    settings = settings.model_copy(update={"step_activity_types": True})
    this_release = ProcessWorkflow.__init__

    def earlier_release(self: ProcessWorkflow, input: ProcessInput) -> None:
        input.step_activity_types = False
        this_release(self, input)

    setattr(earlier_release, "__temporal_workflow_init", True)  # as @workflow.init marks an __init__

    async with ProcessEnvironment(settings=settings, client=temporal.client) as env:
        await env.stop_worker()
        with monkeypatch.context() as earlier:
            earlier.setattr(ProcessWorkflow, "__init__", earlier_release)
            await env.start_worker()
            run = await env.start(approval_process("EarlierWorker").build(ALLOWED), "Start", "doc")
            await wait_for_state(run, lambda s: s.status == "waiting")
            await env.stop_worker()
        await env.start_worker()  # this release: it replays the run, then takes its next step
        await run.send_event("ApprovalReceived", {"approved": True})
        assert (await run.result()).output is not None
        types = [
            e.activity_task_scheduled_event_attributes.activity_type.name
            async for e in run.handle.fetch_history_events()
            if e.HasField("activity_task_scheduled_event_attributes")
        ]
    assert types == ["baton.run_step", "baton.run_step"]


async def test_a_step_scheduled_as_baton_run_step_with_its_names_in_the_input_runs(
    env: ProcessEnvironment,
) -> None:
    # Runs started without step activity types, by this release or an earlier one, schedule
    # `baton.run_step` with the step and the function in the input.
    invocation = {
        "process_name": "Earlier",
        "step": "Step1",
        "ref": "tests.steps:Step1",
        "function": "run",
        "args": {"value": "x"},
        "state": {"calls": 2, "seen": ["a", "b"]},
    }
    outcome = await schedule_on_a_step_worker(env, "baton.run_step", invocation)
    assert outcome["result"] == "x-1"
    assert outcome["state"] == {"calls": 3, "seen": ["a", "b", "x"]}


async def test_an_activity_that_is_no_step_function_is_refused_by_name(env: ProcessEnvironment) -> None:
    with pytest.raises(WorkflowFailureError) as raised:
        await schedule_on_a_step_worker(env, "baton.not_a_step", {"process_name": "P"})
    assert "no activity 'baton.not_a_step' on this worker: not a step function" in str(
        raised.value.cause.cause
    )


@pytest.mark.parametrize(
    ("activity_type", "data", "problem"),
    [
        ("Step1/run", {"process_name": "P", "ref": "tests.steps:Step1", "args": "ana@example.com"}, "args: "),
        ("Step1/run", {"process_name": "P", "ref": "tests.steps:Step1", "args": {}, "state": 7}, "state: "),
        ("billing/charge", {"customer": "ana@example.com"}, "process_name: Field required"),
    ],
    ids=["bad-args", "bad-state", "another-services-activity"],
)
async def test_an_activity_without_a_step_invocation_is_left_for_another_worker_naming_no_value(
    env: ProcessEnvironment, activity_type: str, data: dict, problem: str
) -> None:
    with pytest.raises(WorkflowFailureError) as raised:
        await schedule_on_a_step_worker(env, activity_type, data)
    error = raised.value.cause.cause
    assert isinstance(error, ApplicationError) and error.type == "NotFoundError" and not error.non_retryable
    assert f"no activity {activity_type!r} on this worker: not a step function" in str(error)
    assert problem in str(error)
    while error is not None:  # the failure and every cause it carries: all of it is logged
        assert "ana@example.com" not in str(error)
        error = error.__cause__


async def test_step_input_problems_name_no_data(env: ProcessEnvironment) -> None:
    # A dict's keys are data: the path to a problem names them `[key]`.
    invocation = {
        "process_name": "P",
        "step": "Step1",
        "ref": "tests.steps:Step1",
        "function": "run",
        "args": {"value": "x"},
        "state": {"calls": 1, "seen": {"ana@example.com": "not a list"}},
    }
    with pytest.raises(WorkflowFailureError) as raised:
        await schedule_on_a_step_worker(env, "baton.run_step", invocation)
    error = raised.value.cause.cause
    assert (
        isinstance(error, ApplicationError) and error.type == "StepInputInvalid" and error.__cause__ is None
    )
    assert "stored state of step 'Step1' does not fit Step1: seen: " in str(error)
    assert "ana@example.com" not in str(error)


async def schedule_on_a_step_worker(env: ProcessEnvironment, activity_type: str, input: dict) -> dict:
    """Schedule one activity on the queue where `env`'s workers run steps, from a workflow of its own."""
    queue = f"schedules-{uuid.uuid4()}"
    async with Worker(env.temporal, task_queue=queue, workflows=[SchedulesAnActivity]):
        return await env.temporal.execute_workflow(
            SchedulesAnActivity.run,
            args=[activity_type, input, env.settings.resolved_steps_queue],
            id=queue,
            task_queue=queue,
        )


async def test_steps_outside_the_workers_allow_list_do_not_run(temporal, settings) -> None:
    process = linear("Forged").build(ALLOWED)
    locked = settings.model_copy(update={"step_modules": ["baton.examples"]})
    async with ProcessEnvironment(settings=locked, client=temporal.client) as env:
        run = await env.start(process, "Start", "x")
        with pytest.raises(WorkflowFailureError) as raised:
            await run.result()
    assert "StepNotAllowed" in str(raised.value.cause)
    assert "not in the allowed step modules ['baton.examples']" in str(raised.value.cause)


async def test_external_event_after_days_of_waiting(settings) -> None:
    process = approval_process("LongWait").build(ALLOWED)
    async with ProcessEnvironment([process], settings=settings, time_skipping=True) as env:
        run = await env.start(process, "Start", "contract")
        await wait_for_state(run, lambda s: s.status == "waiting")
        await env.sleep(5 * 24 * 3600)
        state = await run.state()
        assert state.status == "waiting" and [m.target.parameter for m in state.pending] == ["value"]
        await run.send_event("ApprovalReceived", {"approved": True})
        assert (await run.result()).output == "CONTRACT:approved"
        events = [e async for e in run.handle.fetch_history_events()]
    accepted = next(e for e in events if e.HasField("workflow_execution_update_accepted_event_attributes"))
    waited = accepted.event_time.ToDatetime() - events[0].event_time.ToDatetime()
    assert waited >= timedelta(days=5)  # in the process's own time, the approval came days later


async def test_a_second_run_with_a_running_key_is_refused(env: ProcessEnvironment) -> None:
    process = approval_process("Keyed").build(ALLOWED)
    first = await env.start(process, "Start", "doc", key="order-7")
    with pytest.raises(RunAlreadyExists, match="a run process-Keyed-order-7 is already running"):
        await env.start(process, "Start", "doc", key="order-7")
    with pytest.raises(ValueError, match=r"run key 'alice@example\.com' is invalid"):
        await env.start(process, "Start", "doc", key="alice@example.com")
    await first.send_event("ApprovalReceived", {"approved": True})
    assert (await first.result()).output == "DOC:approved"


async def test_readme_example_with_its_own_dev_server(journal: Journal) -> None:
    process = approval_process("Readme").build(ALLOWED)
    async with ProcessEnvironment(processes=[process]) as env:
        run = await env.start(process, "Start", "Baton")
        state = await wait_for_state(run, lambda s: s.status == "waiting")
        assert state.steps["Upper"].run_count == 1
        await run.send_event("ApprovalReceived", {"approved": True})
        assert (await run.result()).output == "BATON:approved"


async def test_a_busy_function_does_not_starve_its_sibling(env: ProcessEnvironment) -> None:
    run = await env.start(spinner().build(ALLOWED), "Start", 0)
    await wait_for_state(run, lambda s: s.steps["Spinner"].run_count >= 3)
    await run.send_event("Halt", "enough")
    result = await run.result()
    assert result.output["reason"] == "enough"
    assert result.supersteps < 200
    assert [m.target.function for m in result.unconsumed] == ["again"]


async def test_inputs_left_when_the_process_stops_are_reported(env: ProcessEnvironment) -> None:
    run = await env.start(queued_fan_in().build(ALLOWED), "Left", "a1")
    for name, data in [("Left", "a2"), ("Left", "a3"), ("Right", "b1"), ("Right", "b2")]:
        await run.send_event(name, data)
    result = await run.result()
    assert result.output == ["a1+b1", "a2+b2"]
    assert [(m.target.parameter, m.data, m.origin) for m in result.unconsumed] == [
        ("left", "a3", "input Left")
    ]


async def test_a_worker_caching_no_runs_replays_each_one_to_the_end(temporal, settings) -> None:
    uncached = settings.model_copy(update={"workflow_cache_size": 0})
    aside = uncached.model_copy(update={"workflows_queue": f"{settings.workflows_queue}-aside"})
    [worker] = build_workers(temporal.client, aside, [aside.workflows_queue])
    assert worker.config()["max_cached_workflows"] == 0
    async with ProcessEnvironment(settings=uncached, client=temporal.client) as env:
        first = await env.start(approval_process().build(ALLOWED), "Start", "doc")
        second = await env.start(approval_process().build(ALLOWED), "Start", "memo")
        # Every task of either run starts from its history: the shared compiled process included.
        for run, approved in ((second, False), (first, True)):
            await run.send_event("ApprovalReceived", {"approved": approved})
        assert (await first.result()).output == "DOC:approved"
        assert (await second.result()).output == "MEMO:rejected"

"""`ProcessWorkflow`: one workflow type that interprets any compiled process.

It runs in supersteps: every step function whose inputs are all filled runs (in parallel
across steps), then the results and emitted events are routed into the inputs of the next
superstep. With nothing ready, the process waits, for as long as it takes, for an external event.
"""

import asyncio
import weakref
from collections.abc import Iterable
from typing import Any

from temporalio import workflow
from temporalio.common import TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError, FailureError

with workflow.unsafe.imports_passed_through():
    from baton.agents.access import authorize_agents, run_grant
    from baton.agents.loop import as_prompt, run_agent
    from baton.process.model import CompiledProcess, CompiledStep, Route, Target
    from baton.process.runtime import (
        BATON_PROCESS,
        BATON_TENANT,
        RUN_STEP_ACTIVITY,
        CarriedState,
        EventAccepted,
        EventRejection,
        Message,
        ProcessInput,
        ProcessResult,
        ProcessState,
        ProcessStatus,
        SendEvent,
        StepFailure,
        StepInvocation,
        StepOutcome,
        StepRecord,
        check_event,
        process_search_attributes,
        step_activity_type,
    )
    from baton.security.grants import GRANT_MEMO
    from baton.telemetry.metrics import PROCESS_RUNS, STEP_DURATION


_COMPILED: weakref.WeakValueDictionary[str, CompiledProcess] = weakref.WeakValueDictionary()


def _shared(process: CompiledProcess) -> CompiledProcess:
    """One instance of each compiled process for all the runs a worker holds: runs of one process
    share it instead of each keeping its own (~15 KB for two steps). Only read, never changed."""
    return _COMPILED.setdefault(process.model_dump_json(), process)


MAX_REJECTED_SHOWN = 20
PROCESS_WORKFLOW = "ProcessWorkflow"
CHILD_IDS_UNDER_PARENT = "child-ids-under-parent"
SUPERSTEPS_PER_STRETCH = "max-supersteps-per-stretch"
SIGNALLED_DATA_CHECKED = "signalled-event-data-checked"
STEP_ACTIVITY_TYPES = "step-activity-types"


# Outside the sandbox: only Baton's own code runs in this workflow (steps are activities), and
# the sandbox's re-import of this module cost ~8 ms of CPU per run. Every replay test replays it
# inside the sandbox, with the Baton modules it calls into (tests.test_durability.WORKFLOW_CODE).
@workflow.defn(name=PROCESS_WORKFLOW, sandboxed=False)
class ProcessWorkflow:
    @workflow.init
    def __init__(self, input: ProcessInput) -> None:
        # Set up in init, not in run: an update or signal may arrive in the very first task,
        # before run() starts, and must find the process and its inputs in place.
        input.process = self._process = _shared(input.process)
        self._status: ProcessStatus = "running"
        self._current: list[str] = []
        self._rejected: list[str] = []
        self._stopped = False
        self._output: Any = None
        self._error: str | None = None
        if input.carried is not None:
            self._steps = input.carried.steps
            self._pending = input.carried.pending
            self._superstep = input.carried.superstep
            self._stretch = input.carried.stretch
            self._rejected = input.carried.rejected
        else:
            self._steps = {name: StepRecord() for name in input.process.steps}
            self._pending = []
            self._superstep = 0
            # Supersteps since the last external event: max_supersteps bounds this, a runaway
            # cycle, and not the process's life, which may be months of events.
            self._stretch = 0
            if input.event is not None:
                self._deliver_input(input.event, input.data)

    @workflow.run
    async def run(self, input: ProcessInput) -> ProcessResult:
        process = self._process
        supersteps_this_run = 0
        if input.carried is None:
            _count_run(process.name, "started")
        await authorize_agents(process.agents())
        try:
            while not self._stopped:
                invocations = self._take_ready()
                if invocations:
                    self._superstep += 1
                    self._stretch += 1
                    supersteps_this_run += 1
                    if self._runaway():
                        raise ApplicationError(
                            f"process {process.name!r} ran more than max_supersteps={process.max_supersteps} "
                            "supersteps since its last external event; a cycle may not terminate "
                            "(raise max_supersteps if it should run longer)",
                            type="MaxSuperstepsExceeded",
                            non_retryable=True,
                        )
                    await self._run_superstep(input, invocations)
                else:
                    await self._wait_for_event()
                if not self._stopped and self._should_continue_as_new(input, supersteps_this_run):
                    # Also while waiting: every event lands in history, and a long wait must
                    # not run into Temporal's history limit.
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    carried = CarriedState(
                        steps=self._steps,
                        pending=self._pending,
                        superstep=self._superstep,
                        stretch=self._stretch,
                        rejected=self._rejected,
                    )
                    workflow.continue_as_new(
                        input.model_copy(update={"event": None, "data": None, "carried": carried})
                    )
        except ApplicationError as e:
            self._status, self._error = "failed", e.message
            _count_run(process.name, "failed")
            raise
        except asyncio.CancelledError:
            self._status = "cancelled"
            _count_run(process.name, "cancelled")
            raise
        self._status = "completed"
        _count_run(process.name, "completed")
        workflow.set_current_details(f"completed after {self._superstep} supersteps")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return ProcessResult(
            output=self._output,
            supersteps=self._superstep,
            run_counts={name: record.run_count for name, record in self._steps.items()},
            unconsumed=self._pending,
        )

    @workflow.query
    def state(self) -> ProcessState:
        """Status, each step's state and run count, pending messages and what runs now."""
        process = self._process
        return ProcessState(
            name=process.name,
            version=process.version,
            status=self._status,
            superstep=self._superstep,
            current=self._current,
            steps=self._steps,
            pending=self._pending,
            accepted_events=process.input_events,
            rejected_events=self._rejected,
            output=self._output,
            error=self._error,
        )

    @workflow.update
    async def send_event(self, event: SendEvent) -> EventAccepted:
        """Deliver an external event; refused before it reaches history if the process does not
        declare it, its data does not fit the parameters it fills, or the process has finished."""
        return EventAccepted(name=event.name, deliveries=self._deliver_input(event.name, event.data))

    @send_event.validator
    def _validate_send_event(self, event: SendEvent) -> None:
        # Validators do not run on replay, so refusing more here changes no recorded history.
        rejection = self._rejection(event)
        if rejection is not None:
            # The rejection travels as the details, for the client to raise its own error from.
            raise ApplicationError(rejection.message, rejection, type=rejection.reason)

    @workflow.signal(name="send_event_signal")
    def send_event_signal(self, event: SendEvent) -> None:
        """Fire-and-forget twin of the `send_event` update: what the update would refuse is
        logged and dropped, and listed in the state."""
        rejection = self._rejection(event)
        # Runs from before the data was checked delivered such data (and failed in the step).
        if rejection is not None and (
            rejection.reason != "InvalidEventData" or workflow.patched(SIGNALLED_DATA_CHECKED)
        ):
            workflow.logger.warning("Dropped an event: %s", rejection.message)
            # Bounded: a sender in a loop must not grow the state without end.
            self._rejected = [*self._rejected[-(MAX_REJECTED_SHOWN - 1) :], event.name]
            return
        self._deliver_input(event.name, event.data)

    def _rejection(self, event: SendEvent) -> EventRejection | None:
        """Why the process refuses `event`, if it does; the same check as `BatonClient.start_process`'s."""
        process = self._process
        if event.name in process.input_events and (self._stopped or self._status in ("failed", "cancelled")):
            return EventRejection(
                reason="ProcessFinished",
                process=process.name,
                event=event.name,
                accepted=process.input_events,
            )
        return check_event(process, event.name, event.data)

    # -- routing --------------------------------------------------------------------------------

    def _deliver_input(self, name: str, data: Any) -> int:
        self._stretch = 0  # progress from outside: whatever runs next is a new stretch of work
        return self._route(self._process.routes_for("input", None, name), data, f"input {name}")

    def _route(self, routes: Iterable[Route], data: Any, origin: str) -> int:
        """Queue the data for every target of the routes; the first stop route sets the output."""
        deliveries = 0
        for route in routes:
            if route.stop and not self._stopped:
                self._stopped, self._output = True, data
            for target in route.to:
                self._pending.append(Message(target=target, data=data, origin=origin))
                deliveries += 1
        return deliveries

    def _take_ready(self) -> list[tuple[CompiledStep, str, dict[str, Any]]]:
        """Per step, one function whose every parameter has a message; its messages are taken.

        One function per step per superstep, since a step's state is updated by one call at a
        time; of several ready functions, the one with the oldest message goes first, so none
        starves. Messages for a parameter that is already filled stay queued for a later run.
        """
        ready = []
        for step in self._process.steps.values():
            candidates = []
            for function, params in step.functions.items():
                wanted: list[str | None] = [*params] or [None]
                taken = [self._first_pending(step.name, function, p) for p in wanted]
                if all(m is not None for m in taken):
                    messages = [m for m in taken if m is not None]
                    oldest = min(self._pending.index(m) for m in messages)
                    candidates.append((oldest, function, params, messages))
            if candidates:
                _, function, params, messages = min(candidates, key=lambda c: c[0])
                for message in messages:
                    self._pending.remove(message)
                ready.append((step, function, {p: m.data for p, m in zip(params, messages, strict=False)}))
        return ready

    def _first_pending(self, step: str, function: str, parameter: str | None) -> Message | None:
        target = Target(step=step, function=function, parameter=parameter)
        return next((m for m in self._pending if m.target == target), None)

    # -- running steps --------------------------------------------------------------------------

    async def _run_superstep(
        self, input: ProcessInput, invocations: list[tuple[CompiledStep, str, dict[str, Any]]]
    ) -> None:
        self._current = [f"{step.name}.{function}" for step, function, _ in invocations]
        workflow.set_current_details(f"superstep {self._superstep}: running {', '.join(self._current)}")
        outcomes = await asyncio.gather(
            *(self._timed_step(input, step, function, args) for step, function, args in invocations),
            return_exceptions=True,
        )
        self._current = []
        for (step, function, _), outcome in zip(invocations, outcomes, strict=True):
            self._record_outcome(step, function, outcome)

    def _record_outcome(
        self, step: CompiledStep, function: str, outcome: StepOutcome | BaseException
    ) -> None:
        process = self._process
        record = self._steps[step.name]
        record.run_count += 1
        where = f"{step.name}.{function}"
        if isinstance(outcome, FailureError):
            failure = _failure(step.name, function, outcome)
            error_routes = process.routes_for("error", step.name, function)
            if not error_routes:
                raise ApplicationError(
                    f"step {where} failed: {failure.error_type}: {failure.message}",
                    failure.model_dump(),
                    type="StepFailed",
                    non_retryable=True,
                )
            self._route(error_routes, failure.model_dump(mode="json"), f"error of {where}")
            return
        if isinstance(outcome, BaseException):
            raise outcome
        if step.kind == "step":
            record.state = outcome.state
        for event in outcome.events:
            self._route(
                process.routes_for("event", step.name, event.name),
                event.data,
                f"event {event.name} of {where}",
            )
        self._route(process.routes_for("result", step.name, function), outcome.result, f"result of {where}")

    async def _timed_step(
        self, input: ProcessInput, step: CompiledStep, function: str, args: dict[str, Any]
    ) -> StepOutcome:
        """The step, its duration measured (`baton_process_step_duration_seconds`), once."""
        started = workflow.time()
        try:
            return await self._run_step(input, step, function, args)
        finally:
            if not workflow.unsafe.is_replaying():
                STEP_DURATION.labels(self._process.name, step.name).observe(workflow.time() - started)

    async def _run_step(
        self, input: ProcessInput, step: CompiledStep, function: str, args: dict[str, Any]
    ) -> StepOutcome:
        options = step.options
        if step.kind == "process":
            assert step.process is not None
            result = await workflow.execute_child_workflow(
                ProcessWorkflow.run,
                ProcessInput(
                    process=step.process,
                    event=function,
                    data=args.get("data"),
                    steps_queue=input.steps_queue,
                    llm_queue=input.llm_queue,
                    step_activity_types=input.step_activity_types,
                ),
                id=self._child_id(step.name),
                static_summary=f"sub-process {step.name} ({function})",
                search_attributes=self._child_search_attributes(step.process.name),
                memo={GRANT_MEMO: grant} if (grant := run_grant()) else None,
            )
            return StepOutcome(result=result.output, state={})
        if step.kind == "agent":
            assert step.agent is not None
            run = await run_agent(
                step.agent, as_prompt(args.get("input")), llm_queue=input.llm_queue, label=step.name
            )
            return StepOutcome(result=run.answer, state={})
        invocation = StepInvocation(
            process_name=input.process.name,
            ref=step.ref or "",
            args=args,
            state=self._steps[step.name].state,
        )
        # The step function as the activity's type, shown in the UI, instead of a summary: a
        # payload of ~250 bytes a step, encrypted like every other. Behind a patch as well as the
        # input: a worker of an earlier release ignores the input's flag, and a run whose first
        # steps it scheduled as `baton.run_step` must go on so when this release replays it.
        if input.step_activity_types and workflow.patched(STEP_ACTIVITY_TYPES):
            activity_type, summary = step_activity_type(step.name, function), None
        else:
            activity_type, summary = RUN_STEP_ACTIVITY, f"{step.name}.{function}"
            invocation = invocation.model_copy(update={"step": step.name, "function": function})
        policy = options.retry.policy()
        if options.local:
            return await workflow.execute_local_activity(
                activity_type,
                invocation,
                result_type=StepOutcome,
                start_to_close_timeout=options.timeout,
                schedule_to_close_timeout=options.retry.window,
                retry_policy=policy,
                summary=summary,
            )
        return await workflow.execute_activity(
            activity_type,
            invocation,
            result_type=StepOutcome,
            task_queue=options.task_queue or input.steps_queue,
            start_to_close_timeout=options.timeout,
            schedule_to_close_timeout=options.retry.window,
            heartbeat_timeout=options.heartbeat_timeout,
            retry_policy=policy,
            summary=summary,
        )

    def _child_search_attributes(self, process: str) -> TypedSearchAttributes | None:
        """The child's process, and the parent's tenant; none when the parent has none (a
        Temporal where Baton's search attributes are not registered)."""
        parent = workflow.info().typed_search_attributes
        if BATON_PROCESS not in parent:
            return None
        return process_search_attributes(process, parent.get(BATON_TENANT))

    def _child_id(self, step: str) -> str:
        """`<parent>/<step>/<superstep>`: a child's ID starts with its root run's, so the codec
        finds the run's data subject for the child's payloads too (runs before this used `-`)."""
        parent = workflow.info().workflow_id
        if workflow.patched(CHILD_IDS_UNDER_PARENT):
            return f"{parent}/{step}/{self._superstep}"
        return f"{parent}-{step}-{self._superstep}"

    async def _wait_for_event(self) -> None:
        process = self._process
        self._status = "waiting"
        workflow.set_current_details(
            f"waiting for an external event ({', '.join(process.input_events)})"
            + (f"; {len(self._pending)} input(s) queued for fan-in" if self._pending else "")
        )
        pending_before = len(self._pending)
        await workflow.wait_condition(
            lambda: (
                self._stopped
                or len(self._pending) != pending_before
                or workflow.info().is_continue_as_new_suggested()
            )
        )
        self._status = "running"

    def _runaway(self) -> bool:
        """Whether this stretch of work went past max_supersteps: a cycle that may not end."""
        limit = self._process.max_supersteps
        if self._superstep > limit >= self._stretch:
            # Runs from before max_supersteps bounded a stretch failed here, over their whole life.
            return not workflow.patched(SUPERSTEPS_PER_STRETCH)
        return self._stretch > limit

    def _should_continue_as_new(self, input: ProcessInput, supersteps_this_run: int) -> bool:
        if workflow.info().is_continue_as_new_suggested():
            return True
        return input.continue_as_new_after is not None and supersteps_this_run >= input.continue_as_new_after


def _failure(step: str, function: str, error: FailureError) -> StepFailure:
    """The innermost application error of a failed step: what the step itself raised."""
    cause: BaseException | None = error
    while isinstance(cause, ActivityError | ChildWorkflowError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        return StepFailure(
            step=step, function=function, error_type=cause.type or "Error", message=cause.message
        )
    return StepFailure(step=step, function=function, error_type=type(cause).__name__, message=str(cause))


def _count_run(process: str, outcome: str) -> None:
    """`baton_process_runs_total`, once: not again when the run replays."""
    if not workflow.unsafe.is_replaying():
        PROCESS_RUNS.labels(process, outcome).inc()

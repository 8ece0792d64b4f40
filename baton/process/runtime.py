"""Models that cross the Temporal boundary when a process runs: workflow input and result,
step activity input and outcome, the `state` query and the `send_event` update."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from .model import CompiledProcess, Target

RUN_STEP_ACTIVITY = "baton.run_step"
"""Activity type of every step of a run started without `step_activity_types` (the default in this
release), with the step and the function in its input; stable: running workflows schedule it."""


def step_activity_type(step: str, function: str) -> str:
    """The activity type of a step function, `<step>/<function>`: what the Temporal UI and the SDK's
    activity metrics show. No activity of Baton's own has a `/` in its type."""
    return f"{step}/{function}"


BATON_PROCESS = SearchAttributeKey.for_keyword("BatonProcess")
"""Search attribute naming the process of a run: a process name, never personal data."""
BATON_TENANT = SearchAttributeKey.for_keyword("BatonTenant")
"""The tenant a run belongs to, when the API serves several (`api_tenant_claim`)."""

ProcessStatus = Literal["running", "waiting", "completed", "failed", "cancelled"]


def process_search_attributes(process_name: str, tenant: str | None = None) -> TypedSearchAttributes:
    """A process run's search attributes: its process, and the tenant it belongs to, if any."""
    pairs: list[SearchAttributePair[str]] = [SearchAttributePair(BATON_PROCESS, process_name)]
    if tenant is not None:
        pairs.append(SearchAttributePair(BATON_TENANT, tenant))
    return TypedSearchAttributes(pairs)


class Message(BaseModel):
    """Data on its way into one parameter of one step function."""

    target: Target
    data: Any = None
    origin: str = Field(description="What produced it, e.g. 'result of gather.gather'.")


class StepRecord(BaseModel):
    """What the process keeps of one step: its durable state and how often it ran."""

    state: dict[str, Any] | None = None
    run_count: int = 0


class CarriedState(BaseModel):
    """Everything a process carries into its next run when it continues as new."""

    steps: dict[str, StepRecord]
    pending: list[Message]
    superstep: int
    stretch: int = Field(
        0,
        description="Supersteps since the process last waited for an external event (max_supersteps bounds it).",
    )
    rejected: list[str] = Field(default_factory=list, description="The latest events the signal dropped.")


class ProcessInput(BaseModel):
    """Input of `ProcessWorkflow`: the compiled process and the event that starts it."""

    process: CompiledProcess
    event: str | None = Field(None, description="The start event; empty when continuing as new.")
    data: Any = None
    steps_queue: str | None = Field(
        None,
        description="Queue of step activities without their own; None: the workflow's own queue. "
        "BatonClient always names it, so that workers of releases where it was a required string "
        "run what it starts.",
    )
    llm_queue: str = Field("baton-llm", description="Queue of the LLM and tool calls of agent steps.")
    step_activity_types: bool = Field(
        False,
        description="Schedule steps as `<step>/<function>` activities, not `baton.run_step` with a "
        "summary (`BATON_STEP_ACTIVITY_TYPES`); decided when the run starts, so its replays agree.",
    )
    carried: CarriedState | None = None
    continue_as_new_after: int | None = Field(
        None,
        ge=1,
        description="Continue as new after this many supersteps, besides when Temporal suggests it.",
    )


class ProcessResult(BaseModel):
    """What a finished process returns: the data of the event that stopped it."""

    output: Any = None
    supersteps: int
    run_counts: dict[str, int]
    unconsumed: list[Message] = Field(
        default_factory=list,
        description="Inputs still queued when the process stopped: delivered, never used.",
    )


def _empty(value: object) -> bool:
    return not value


class StepInvocation(BaseModel):
    """Input of the step activity: which function of which step, with what inputs and state.

    Fields left empty stay out of the payload, which is kept in the run's history once per step:
    the step and the function, which the activity type names (`step_activity_type`), and a step's
    state before it has one.
    """

    process_name: str
    step: str = Field(default="", exclude_if=_empty)
    ref: str = Field(description="Import path of the ProcessStep class.")
    function: str = Field(default="", exclude_if=_empty)
    args: dict[str, Any]
    state: dict[str, Any] | None = Field(default=None, exclude_if=lambda state: state is None)


class EmittedEventData(BaseModel):
    name: str
    data: Any = None


class StepOutcome(BaseModel):
    """Output of the step activity: the return value, emitted events and the new state."""

    result: Any = None
    events: list[EmittedEventData] = Field(default_factory=list, exclude_if=_empty)
    state: dict[str, Any]


class StepFailure(BaseModel):
    """The data an `on_error` route sends on when a step function failed after its retries."""

    step: str
    function: str
    error_type: str
    message: str


class SendEvent(BaseModel):
    """An external event for a running process (`send_event` update or signal)."""

    name: str = Field(min_length=1)
    data: Any = None


class EventRejection(BaseModel):
    """Why a process refuses an event: the details of a refused `send_event` update, and what
    `BatonClient.start_process` checks before starting, so that both say the same."""

    reason: Literal["UnknownEvent", "InvalidEventData", "ProcessFinished"]
    process: str
    event: str
    accepted: list[str] = Field(description="The input events the process declares.")
    problems: list[str] = Field(
        default_factory=list, description="For InvalidEventData: each target and field that does not fit."
    )

    @property
    def message(self) -> str:
        if self.reason == "UnknownEvent":
            return (
                f"process {self.process!r} does not accept event {self.event!r}; "
                f"it accepts: {', '.join(self.accepted)}"
            )
        if self.reason == "InvalidEventData":
            return f"the data of event {self.event!r} does not fit process {self.process!r}: " + "; ".join(
                self.problems
            )
        return f"process {self.process!r} has finished; it takes no more events"


def check_event(process: CompiledProcess, event: str, data: Any) -> EventRejection | None:
    """Why `process` would refuse input event `event` carrying JSON `data`; None if it takes it."""
    if event not in process.input_events:
        return EventRejection(
            reason="UnknownEvent", process=process.name, event=event, accepted=process.input_events
        )
    problems = process.event_problems(event, data)
    if problems:
        return EventRejection(
            reason="InvalidEventData",
            process=process.name,
            event=event,
            accepted=process.input_events,
            problems=problems,
        )
    return None


class EventAccepted(BaseModel):
    """Reply to the `send_event` update: how many step inputs the event filled."""

    name: str
    deliveries: int


class ProcessState(BaseModel):
    """Answer of the `state` query: what the process is doing and what it holds."""

    name: str
    version: int | None
    status: ProcessStatus
    superstep: int
    current: list[str] = Field(description="Step functions running now, as 'step.function'.")
    steps: dict[str, StepRecord]
    pending: list[Message]
    accepted_events: list[str]
    rejected_events: list[str] = Field(default_factory=list)
    output: Any = None
    error: str | None = None

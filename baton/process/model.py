"""A process definition as data: what YAML files, the database and the workflow carry."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..agents.spec import AgentSpec
from ..compliance.processing import Processing
from ..retry import RetryOptions
from .schema import JsonSchema, schema_problems

RouteTrigger = Literal["input", "result", "event", "error"]


class StepOptions(BaseModel):
    """Where and how a step runs."""

    model_config = ConfigDict(extra="forbid")

    retry: RetryOptions = Field(default_factory=RetryOptions)
    timeout_seconds: float = Field(300.0, gt=0, description="Limit on one attempt of a step function.")
    heartbeat_seconds: float | None = Field(
        30.0,
        gt=0,
        description="A worker that stops heartbeating for this long is presumed dead and the attempt "
        "is retried elsewhere; the step activity heartbeats by itself. Not used by local steps.",
    )
    task_queue: str | None = Field(
        None, description="Queue of the workers that run this step; the steps queue by default."
    )
    local: bool = Field(
        False, description="Run as a local activity in the workflow worker: for short steps only."
    )

    @model_validator(mode="after")
    def _window_holds_an_attempt(self) -> StepOptions:
        self.retry.check_window(self.timeout_seconds)
        return self

    @property
    def timeout(self) -> timedelta:
        return timedelta(seconds=self.timeout_seconds)

    @property
    def heartbeat_timeout(self) -> timedelta | None:
        return timedelta(seconds=self.heartbeat_seconds) if self.heartbeat_seconds else None


NAME = r"[A-Za-z_][A-Za-z0-9_\-]{0,99}"
"""A process's or a step's name: an identifier that may hold hyphens, at most 100 characters. It
shows in workflow IDs and, as `<step>/<function>`, in activity types."""


class StepDefinition(BaseModel):
    """One step: a `ProcessStep` class by import path, a nested process run as a child, or an agent."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=f"^{NAME}$")
    step: str | None = Field(None, description="Import path 'package.module:ClassName'.")
    process: ProcessDefinition | None = Field(None, description="A sub-process, run as a child workflow.")
    agent: AgentSpec | str | None = Field(
        None,
        description="An agent, inline or by name in the agent registry, run by the workflow's agent loop.",
    )
    options: StepOptions = Field(default_factory=StepOptions)


class Target(BaseModel):
    """Where a routed event goes: a step, one of its functions, one of that function's parameters."""

    model_config = ConfigDict(extra="forbid")

    step: str
    function: str | None = None
    parameter: str | None = None


class Route(BaseModel):
    """When an event happens (`when`, from step `source`, named `name`), send its data on or stop.

    `when` is `input` for events from outside (then `source` is empty), `result` for a step
    function's return value, `event` for an event a step emitted, `error` for a step function
    that failed after its retries. For `result` and `error`, an empty `name` means any function.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: str | None = Field(None, alias="from")
    when: RouteTrigger
    name: str | None = None
    to: list[Target] = Field(default_factory=list)
    stop: bool = Field(False, description="End the process; the event's data is its output.")

    def describe(self) -> str:
        if self.when == "input":
            return f"input event {self.name!r}"
        what = {"result": "result of", "event": "event", "error": "error of"}[self.when]
        return f"{what} {self.source}{'.' + self.name if self.name else ''}"


class ProcessDefinition(BaseModel):
    """A whole process: steps and the routes between them. Round-trips through YAML."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=f"^{NAME}$")
    description: str = ""
    max_supersteps: int = Field(
        100, ge=1, description="Bound on rounds of step runs, so that a cycle cannot loop forever."
    )
    steps: list[StepDefinition]
    routes: list[Route]
    processing: Processing | None = Field(
        None,
        description="Why runs of this process process a data subject's data, when started with "
        "one: required then, here or in the start call, which overrides it.",
    )


class CompiledStep(BaseModel):
    """A step as the workflow runs it, with every function's parameters resolved."""

    model_config = ConfigDict(frozen=True)  # workers share one instance among runs

    name: str
    kind: Literal["step", "process", "agent"]
    ref: str | None = None
    functions: dict[str, list[str]]
    parameter_schemas: dict[str, dict[str, JsonSchema]] = Field(
        default_factory=dict,
        description="JSON schema of each typed input, by function and parameter, so that the "
        "workflow checks events without importing step code. Compiled before there were schemas: empty.",
    )
    options: StepOptions
    process: CompiledProcess | None = None
    agent: AgentSpec | None = None


class CompiledProcess(BaseModel):
    """A validated definition with nothing left implicit: what `ProcessWorkflow` interprets.

    Every target names its function and parameter, so the workflow never imports step code.
    For a sub-process step, its functions are the child's input events, each with one parameter.
    Frozen: a worker shares one instance among the runs of a process.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    version: int | None = None
    max_supersteps: int
    input_events: list[str]
    steps: dict[str, CompiledStep]
    routes: list[Route]

    def agents(self) -> list[AgentSpec]:
        """Every agent the process's steps run, its sub-processes' included."""
        found: list[AgentSpec] = []
        for step in self.steps.values():
            if step.agent is not None:
                found.append(step.agent)
            if step.process is not None:
                found += step.process.agents()
        return found

    def routes_for(self, when: RouteTrigger, source: str | None, name: str | None) -> list[Route]:
        """Routes that an event of this kind, from this source and with this name, triggers."""
        return [
            r
            for r in self.routes
            if r.when == when and r.source == source and (r.name is None or r.name == name)
        ]

    def event_problems(self, event: str, data: Any) -> list[str]:
        """What is wrong with JSON `data` for input event `event`, naming target and field; empty
        when it fits every parameter the event fills (those of sub-processes included)."""
        problems: list[str] = []
        for route in self.routes_for("input", None, event):
            for target in route.to:
                step = self.steps[target.step]
                where = f"{target.step}.{target.function}"
                if step.process is not None and target.function is not None:
                    problems += [
                        f"{where} (sub-process) {p}"
                        for p in step.process.event_problems(target.function, data)
                    ]
                schema = step.parameter_schemas.get(target.function or "", {}).get(target.parameter or "")
                if schema is not None:
                    problems += [
                        f"{where}, parameter {target.parameter!r}: {p}" for p in schema_problems(schema, data)
                    ]
        return list(dict.fromkeys(problems))


StepDefinition.model_rebuild()
CompiledStep.model_rebuild()

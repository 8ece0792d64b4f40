"""The Python API for declaring a process: steps, and routes of events between them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..agents.spec import AgentSpec
from ..compliance.processing import Processing
from ..documents import load_yaml
from ..settings import get_settings
from .compiler import compile_definition, remember_main_step
from .errors import ProcessDefinitionError
from .mermaid import to_mermaid
from .model import (
    CompiledProcess,
    ProcessDefinition,
    RetryOptions,
    Route,
    RouteTrigger,
    StepDefinition,
    StepOptions,
    Target,
)
from .step import ProcessStep, import_path


class Process:
    """A validated process, ready to run. Build one with `ProcessBuilder` or `load_process`."""

    def __init__(self, definition: ProcessDefinition, compiled: CompiledProcess) -> None:
        self._definition = definition
        self.compiled = compiled

    @property
    def name(self) -> str:
        return self._definition.name

    @property
    def processing(self) -> Processing | None:
        """Why its runs process a data subject's data, if the definition says."""
        return self._definition.processing

    @property
    def version(self) -> int | None:
        return self.compiled.version

    def with_version(self, version: int) -> Process:
        """The same process, labelled with its deployed version."""
        return Process(self._definition, self.compiled.model_copy(update={"version": version}))

    def to_definition(self) -> ProcessDefinition:
        """The process as data, which `load_process` turns back into this process."""
        return self._definition.model_copy(deep=True)

    def to_yaml(self) -> str:
        data = self._definition.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        return yaml.safe_dump(data, sort_keys=False)

    def to_mermaid(self) -> str:
        """A Mermaid flowchart of the steps and routes."""
        return to_mermaid(self.compiled)

    def __repr__(self) -> str:
        return f"Process({self.name!r}, steps={list(self.compiled.steps)})"


def load_process(
    source: str | Path | dict[str, Any] | ProcessDefinition,
    allowed_modules: Sequence[str] | None = None,
    agents: Mapping[str, AgentSpec] | None = None,
) -> Process:
    """Load and validate a process from YAML text, a YAML file (`Path`), a dict or a definition.

    Steps are imported only from `allowed_modules` (default: the `step_modules` setting); agent
    steps that name their agent find it in `agents` (default: the `agent_dirs` setting).
    Every problem is reported at once in one `ProcessDefinitionError`.
    """
    origin = "definition"
    if isinstance(source, Path):
        origin = str(source)
        try:
            source = source.read_text()
        except OSError as e:
            raise ProcessDefinitionError(origin, [f"cannot read {origin}: {e.strerror}"]) from e
    if isinstance(source, str):
        try:
            source = load_yaml(source)
        except yaml.YAMLError as e:
            raise ProcessDefinitionError(origin, [f"not valid YAML: {e}"]) from e
    if isinstance(source, ProcessDefinition):
        definition = source
    else:
        if not isinstance(source, dict):
            raise ProcessDefinitionError(origin, ["a process definition must be a mapping"])
        try:
            definition = ProcessDefinition.model_validate(source)
        except ValidationError as e:
            name = str(source.get("name", origin))
            raise ProcessDefinitionError(name, _pydantic_problems(e, origin)) from e
    allowed = get_settings().step_modules if allowed_modules is None else allowed_modules
    return Process(definition, compile_definition(definition, allowed, agents))


def _pydantic_problems(error: ValidationError, origin: str) -> list[str]:
    prefix = "" if origin == "definition" else f"{origin}: "
    return [
        f"{prefix}{'.'.join(str(p) for p in e['loc']) or 'definition'}: {e['msg']}" for e in error.errors()
    ]


class RouteBuilder:
    """Says where an event goes: `send_event_to(...)` (repeatable, to fan out) or `stop_process()`."""

    def __init__(self, route: Route) -> None:
        self._route = route

    def send_event_to(
        self, step: StepHandle, function: str | None = None, parameter: str | None = None
    ) -> RouteBuilder:
        """Deliver the event's data to `step`, into `function`'s `parameter`.

        `function` may be left out when the step has one function, and `parameter` when the
        function takes one. A fan-in function with several parameters needs `parameter`.
        """
        self._route.to.append(Target(step=step.name, function=function, parameter=parameter))
        return self

    def stop_process(self) -> None:
        """End the process when this event happens; its data becomes the process output."""
        self._route.stop = True


class StepHandle:
    """A step added to a builder; its `on_*` methods start routes from its events."""

    def __init__(self, builder: ProcessBuilder, name: str) -> None:
        self._builder = builder
        self.name = name

    def on_function_result(self, function: str | None = None) -> RouteBuilder:
        """Route the return value of `function` (of any function, when not given)."""
        return self._builder._route("result", self.name, function)

    def on_event(self, name: str) -> RouteBuilder:
        """Route an event the step emits with `ctx.emit_event(name, data)`."""
        return self._builder._route("event", self.name, name)

    def on_error(self, function: str | None = None) -> RouteBuilder:
        """Route the failure of `function` once its retries are exhausted.

        The data sent on is a `StepFailure` (step, function, error type, message). Without an
        error route, a failing step fails the whole process.
        """
        return self._builder._route("error", self.name, function)


class ProcessBuilder:
    """Declares a process step by step, then `build()`s a validated `Process`.

    ```python
    b = ProcessBuilder("DocumentGeneration")
    gather = b.add_step(GatherProductInfo)
    publish = b.add_step(PublishDocumentation)
    b.on_input_event("Start").send_event_to(gather)
    gather.on_function_result().send_event_to(publish)
    publish.on_function_result().stop_process()
    process = b.build()
    ```
    """

    def __init__(
        self,
        name: str,
        *,
        description: str = "",
        max_supersteps: int = 100,
        processing: Processing | None = None,
    ) -> None:
        self.name = name
        self._description = description
        self._max_supersteps = max_supersteps
        self._processing = processing
        self._steps: list[StepDefinition | tuple[str, ProcessBuilder]] = []
        self._routes: list[Route] = []

    def add_step(
        self,
        step: type[ProcessStep[Any]],
        name: str | None = None,
        *,
        retry: RetryOptions | None = None,
        timeout: timedelta | None = None,
        heartbeat_timeout: timedelta | None = None,
        task_queue: str | None = None,
        local: bool = False,
    ) -> StepHandle:
        """Add a step of class `step`, named after the class unless `name` is given.

        `retry` defaults to 3 attempts with 2^n s backoff, `timeout` (per attempt) to 5 minutes.
        The step heartbeats by itself; a worker silent for `heartbeat_timeout` (default 30 s) is
        presumed dead and the attempt runs again elsewhere.
        `task_queue` sends the step to its own worker deployment; `local=True` runs a short step
        as a local activity inside the workflow worker, which saves a round trip per call.
        A step class defined in `__main__` (a script, a notebook) runs only on a worker in the
        same process, such as `baton.testing.ProcessEnvironment`'s.
        """
        step_name = name or step.__name__
        remember_main_step(step)  # a script's or notebook's step: for this process's own workers
        given: dict[str, object] = {"task_queue": task_queue, "local": local}
        if retry is not None:
            given["retry"] = retry
        if timeout is not None:
            given["timeout_seconds"] = timeout.total_seconds()
        if heartbeat_timeout is not None:
            given["heartbeat_seconds"] = heartbeat_timeout.total_seconds()
        try:
            options = StepOptions.model_validate(given)
            self._steps.append(StepDefinition(name=step_name, step=import_path(step), options=options))
        except ValidationError as e:
            raise ProcessDefinitionError(self.name, _pydantic_problems(e, f"step {step_name!r}")) from e
        return StepHandle(self, step_name)

    def add_agent(self, agent: AgentSpec | str, name: str | None = None) -> StepHandle:
        """Add an agent as a step: its one function `run` takes `input` and returns the answer.

        `agent` is a spec, or the name of an agent in the registry. The input becomes the user
        message (text as is, anything else as JSON); the agent loop runs in the workflow, each
        LLM and tool call an activity on the LLM queue.
        """
        step_name = name or (agent if isinstance(agent, str) else agent.name)
        self._steps.append(StepDefinition(name=step_name, agent=agent))
        return StepHandle(self, step_name)

    def add_process(self, process: ProcessBuilder, name: str | None = None) -> StepHandle:
        """Add another process as a step, run as a child workflow.

        Send events to it by the name of one of its input events (`function=`); its output is
        the step's function result. Retries, timeouts and queues belong to the child's own steps.
        """
        step_name = name or process.name
        self._steps.append((step_name, process))
        return StepHandle(self, step_name)

    def on_input_event(self, name: str) -> RouteBuilder:
        """Route an event sent from outside: the start event, or one sent to a running process."""
        return self._route("input", None, name)

    def to_definition(self) -> ProcessDefinition:
        """What the builder has declared so far, as data (not yet validated against the code)."""
        steps = [
            s if isinstance(s, StepDefinition) else StepDefinition(name=s[0], process=s[1].to_definition())
            for s in self._steps
        ]
        return ProcessDefinition(
            name=self.name,
            description=self._description,
            max_supersteps=self._max_supersteps,
            steps=steps,
            routes=[r.model_copy(deep=True) for r in self._routes],
            processing=self._processing,
        )

    def build(
        self, allowed_modules: Sequence[str] | None = None, agents: Mapping[str, AgentSpec] | None = None
    ) -> Process:
        """Validate and return the process; every problem is reported in one `ProcessDefinitionError`."""
        try:
            definition = self.to_definition()
        except ValidationError as e:
            raise ProcessDefinitionError(self.name, _pydantic_problems(e, "definition")) from e
        return load_process(definition, allowed_modules, agents)

    def _route(self, when: RouteTrigger, source: str | None, name: str | None) -> RouteBuilder:
        route = Route(source=source, when=when, name=name)
        self._routes.append(route)
        return RouteBuilder(route)

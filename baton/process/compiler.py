"""Validation of a definition against the step code, and its compiled form for the workflow."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable, Mapping, Sequence

from ..agents.registry import AgentRegistry
from ..agents.spec import AgentSpec
from ..settings import get_settings
from .errors import ProcessDefinitionError
from .model import CompiledProcess, CompiledStep, ProcessDefinition, Route, StepOptions, Target
from .schema import JsonSchema, parameter_schema
from .step import ProcessStep

SUBPROCESS_PARAMETER = "data"
AGENT_FUNCTION = "run"
AGENT_PARAMETER = "input"


MAIN = "__main__"
"""The module of a script or notebook: always allowed, since importing it runs no new code."""

_main_steps: dict[str, type[ProcessStep]] = {}


def remember_main_step(step: type[ProcessStep]) -> None:
    """Let this process find a step class defined in `__main__` by its qualified name.

    A script's or a Jupyter notebook's classes are attributes of `sys.modules["__main__"]`, but
    the asyncio REPL (`python -m asyncio`) runs its input in a namespace of its own.
    """
    if step.__module__ == MAIN:
        _main_steps[step.__qualname__] = step


def module_allowed(module: str, allowed_modules: Iterable[str]) -> bool:
    """Whether `module` is `__main__`, one of `allowed_modules` or inside one of them."""
    return module == MAIN or any(module == m or module.startswith(m + ".") for m in allowed_modules)


def resolve_step_class(ref: str, allowed_modules: Iterable[str]) -> type[ProcessStep]:
    """Import a `module:Class` step reference, refusing modules outside the allow-list.

    The allow-list is checked before anything is imported: importing runs module code. Steps
    in `__main__` are found only in the process that defined them.
    """
    module_name, sep, qualname = ref.partition(":")
    if not sep or not module_name or not qualname:
        raise ValueError(f"step reference {ref!r} is not of the form 'package.module:ClassName'")
    if "<locals>" in qualname:
        raise ValueError(
            f"step {ref!r} is defined inside a function; define step classes at module level "
            "so that workers can import them"
        )
    if not module_allowed(module_name, allowed_modules):
        raise ValueError(
            f"step {ref!r} is from module {module_name!r}, which is not in the allowed step modules "
            f"{sorted(allowed_modules)} (set BATON_STEP_MODULES)"
        )
    if module_name == MAIN:
        obj = _main_steps.get(qualname) or _attribute(sys.modules[MAIN], qualname)
        if obj is None:
            raise ValueError(
                f"step {ref!r} is defined in __main__, so only a worker in the same process "
                "(baton.testing.ProcessEnvironment) can run it; for other workers, define it in a "
                "module of BATON_STEP_MODULES"
            )
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise ValueError(f"step {ref!r}: cannot import module {module_name!r}: {e}") from e
        obj = _attribute(module, qualname)
        if obj is None:
            raise ValueError(f"step {ref!r}: module {module_name!r} has no {qualname!r}")
    if not (isinstance(obj, type) and issubclass(obj, ProcessStep)):
        raise ValueError(f"step {ref!r} is not a subclass of ProcessStep")
    if not module_allowed(obj.__module__, allowed_modules):
        raise ValueError(
            f"step {ref!r} is defined in module {obj.__module__!r}, which is not in the allowed "
            f"step modules {sorted(allowed_modules)}; {module_name!r} only re-exports it"
        )
    return obj


def _attribute(obj: object, qualname: str) -> object | None:
    """`obj.a.b` for the qualified name `a.b`, or None when a part is missing."""
    for part in qualname.split("."):
        if not hasattr(obj, part):
            return None
        obj = getattr(obj, part)
    return obj


def compile_definition(
    definition: ProcessDefinition,
    allowed_modules: Sequence[str],
    agents: Mapping[str, AgentSpec] | None = None,
) -> CompiledProcess:
    """Check a definition against its step code and resolve it; raise every problem at once.

    Agent steps that name their agent find it in `agents` (default: the configured agent folders).
    """
    problems: list[str] = []
    compiled = _compile(definition, _Agents(agents), allowed_modules, problems, prefix="")
    if problems:
        raise ProcessDefinitionError(definition.name, problems)
    return compiled


class _Agents:
    """The agents named steps refer to, read from the agent folders only if a step names one."""

    def __init__(self, given: Mapping[str, AgentSpec] | None) -> None:
        self._agents = given

    def get(self, name: str) -> AgentSpec | None:
        if self._agents is None:
            self._agents = AgentRegistry.from_dirs(get_settings().agent_dirs)
        return self._agents.get(name)

    def known(self) -> list[str]:
        return sorted(self._agents or ())


def _compile(
    definition: ProcessDefinition, agents: _Agents, allowed: Sequence[str], problems: list[str], prefix: str
) -> CompiledProcess:
    steps: dict[str, CompiledStep] = {}
    for step_def in definition.steps:
        where = f"{prefix}step {step_def.name!r}"
        if step_def.name in steps:
            problems.append(f"{where}: duplicate step name")
            continue
        if sum(x is not None for x in (step_def.step, step_def.process, step_def.agent)) != 1:
            problems.append(
                f"{where}: give exactly one of 'step' (a ProcessStep class), 'process' or 'agent'"
            )
            continue
        if step_def.agent is not None:
            if step_def.options != StepOptions():
                problems.append(
                    f"{where}: an agent step takes no options; its retries, timeout and model "
                    "belong to the agent"
                )
            agent = step_def.agent if isinstance(step_def.agent, AgentSpec) else agents.get(step_def.agent)
            if agent is None:
                problems.append(
                    f"{where}: no agent named {step_def.agent!r} (known: {', '.join(agents.known()) or 'none'})"
                )
                continue
            steps[step_def.name] = CompiledStep(
                name=step_def.name,
                kind="agent",
                functions={AGENT_FUNCTION: [AGENT_PARAMETER]},
                options=step_def.options,
                agent=agent,
            )
            continue
        if step_def.process is not None:
            if step_def.options != StepOptions():
                problems.append(
                    f"{where}: a sub-process step takes no options; it runs on the workflows "
                    "queue, and retries, timeouts and queues belong to the child's own steps"
                )
            child = _compile(step_def.process, agents, allowed, problems, prefix=f"{where} (sub-process): ")
            functions = {event: [SUBPROCESS_PARAMETER] for event in child.input_events}
            steps[step_def.name] = CompiledStep(
                name=step_def.name,
                kind="process",
                functions=functions,
                options=step_def.options,
                process=child,
            )
            continue
        assert step_def.step is not None
        try:
            step_class = resolve_step_class(step_def.step, allowed)
        except ValueError as e:
            problems.append(f"{where}: {e}")
            continue
        functions = step_class.step_functions()
        if not functions:
            problems.append(f"{where}: {step_def.step} has no @step_function methods")
            continue
        try:
            schemas = _parameter_schemas(step_class)
        except NameError as e:  # the step activity could not read them either
            problems.append(f"{where}: the type hints of {step_def.step} cannot be resolved: {e}")
            continue
        steps[step_def.name] = CompiledStep(
            name=step_def.name,
            kind="step",
            ref=step_def.step,
            functions=functions,
            parameter_schemas=schemas,
            options=step_def.options,
        )
    known_steps = {s.name for s in definition.steps}
    routes = [
        r
        for i, route in enumerate(definition.routes)
        if (r := _compile_route(route, i, steps, known_steps, problems, prefix)) is not None
    ]
    input_events = list(dict.fromkeys(r.name for r in routes if r.when == "input" and r.name))
    if not any(r.when == "input" for r in definition.routes):
        problems.append(f"{prefix}no input event: declare one with on_input_event(name)")
    if not any(r.stop for r in definition.routes):
        problems.append(f"{prefix}no route ends the process: end one with stop_process()")
    _check_reachable(definition, routes, steps, problems, prefix)
    _check_fan_in_fed(routes, steps, problems, prefix)
    return CompiledProcess(
        name=definition.name,
        max_supersteps=definition.max_supersteps,
        input_events=input_events,
        steps=steps,
        routes=routes,
    )


def _parameter_schemas(step_class: type[ProcessStep]) -> dict[str, dict[str, JsonSchema]]:
    """The JSON schema of every typed input of the step's functions (untyped ones take anything)."""
    schemas: dict[str, dict[str, JsonSchema]] = {}
    for function in step_class.step_functions():
        typed = {
            name: schema
            for name, hint in step_class.parameter_types(function).items()
            if (schema := parameter_schema(hint)) is not None
        }
        if typed:
            schemas[function] = typed
    return schemas


def _compile_route(
    route: Route,
    index: int,
    steps: dict[str, CompiledStep],
    known_steps: set[str],
    problems: list[str],
    prefix: str,
) -> Route | None:
    """The route with its targets resolved, reporting what is wrong with it.

    A route with problems is still returned (without its bad targets) when its source exists, so
    that the reachability and fan-in checks see it and report no problems that are not there.
    """
    where = f"{prefix}route {index + 1} ({route.describe()})"
    if route.when == "input":
        if route.source is not None:
            problems.append(f"{where}: an input route has no source step")
        if not route.name:
            problems.append(f"{where}: an input route needs the event name")
    elif route.source not in known_steps:
        problems.append(f"{where}: unknown source step {route.source!r}")
    elif route.when == "event" and not route.name:
        problems.append(f"{where}: an event route needs the event name")
    elif route.source in steps and route.name and route.when in ("result", "error"):
        if route.name not in steps[route.source].functions:
            problems.append(
                f"{where}: step {route.source!r} has no function {route.name!r} "
                f"(it has {_listing(steps[route.source].functions)})"
            )
    if route.stop and route.to:
        problems.append(f"{where}: a route either stops the process or sends the event on, not both")
    if not route.stop and not route.to:
        problems.append(f"{where}: goes nowhere: add send_event_to(...) or stop_process()")
    targets = [t for t in (_resolve_target(t, steps, known_steps, problems, where) for t in route.to) if t]
    if route.when != "input" and route.source not in known_steps:
        return None
    return route.model_copy(update={"to": targets})


def _resolve_target(
    target: Target, steps: dict[str, CompiledStep], known_steps: set[str], problems: list[str], where: str
) -> Target | None:
    if target.step not in known_steps:
        problems.append(f"{where}: unknown target step {target.step!r}")
        return None
    step = steps.get(target.step)
    if step is None:  # the step itself is invalid, and reported already
        return None
    function = target.function
    if function is None:
        if len(step.functions) != 1:
            problems.append(
                f"{where}: step {target.step!r} has several functions "
                f"({_listing(step.functions)}); name one with function="
            )
            return None
        (function,) = step.functions
    elif function not in step.functions:
        problems.append(
            f"{where}: step {target.step!r} has no function {function!r} (it has {_listing(step.functions)})"
        )
        return None
    params = step.functions[function]
    parameter = target.parameter
    if parameter is None:
        if len(params) > 1:
            problems.append(
                f"{where}: {target.step}.{function} takes several parameters ({', '.join(params)}); "
                "name the one this route fills with parameter="
            )
            return None
        parameter = params[0] if params else None
    elif parameter not in params:
        problems.append(
            f"{where}: {target.step}.{function} has no parameter {parameter!r} "
            f"(it has {', '.join(params) or 'none'})"
        )
        return None
    return Target(step=target.step, function=function, parameter=parameter)


def _check_reachable(
    definition: ProcessDefinition,
    routes: list[Route],
    steps: dict[str, CompiledStep],
    problems: list[str],
    prefix: str,
) -> None:
    reached: set[str] = set()
    frontier = [t.step for r in routes if r.when == "input" for t in r.to]
    while frontier:
        step = frontier.pop()
        if step in reached:
            continue
        reached.add(step)
        frontier.extend(t.step for r in routes if r.source == step for t in r.to)
    for name in dict.fromkeys(s.name for s in definition.steps):
        if name in steps and name not in reached:
            problems.append(f"{prefix}step {name!r} is unreachable: no route from an input event leads to it")


def _check_fan_in_fed(
    routes: list[Route], steps: dict[str, CompiledStep], problems: list[str], prefix: str
) -> None:
    fed: dict[tuple[str, str], set[str | None]] = {}
    for route in routes:
        for t in route.to:
            assert t.function is not None
            fed.setdefault((t.step, t.function), set()).add(t.parameter)
    for (step, function), parameters in fed.items():
        for param in steps[step].functions[function]:
            if param not in parameters:
                problems.append(
                    f"{prefix}{step}.{function} waits for parameter {param!r}, but no route feeds it"
                )


def _listing(names: Iterable[str]) -> str:
    return ", ".join(sorted(names)) or "none"

"""Steps: the units of work in a process, each with durable state of its own."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

StateT = TypeVar("StateT", bound=BaseModel)
StepFunction = Callable[..., Awaitable[Any]]

_STEP_FUNCTION_MARK = "__baton_step_function__"


class NoState(BaseModel):
    """State of a step that keeps none."""


def step_function(fn: StepFunction) -> StepFunction:
    """Mark an `async def` method of a `ProcessStep` as a function that routes can call.

    Its parameters after `ctx` are the inputs that incoming events fill; its return value
    is the data of the step's function-result event.
    """
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"step function {fn.__qualname__} must be declared with 'async def'")
    params = list(inspect.signature(fn).parameters.values())
    if len(params) < 2 or params[1].name != "ctx":
        raise TypeError(f"step function {fn.__qualname__} must take (self, ctx, ...inputs)")
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    if any(p.kind not in named for p in params[2:]):
        raise TypeError(
            f"step function {fn.__qualname__}: inputs must be named parameters, not *args or **kwargs"
        )
    setattr(fn, _STEP_FUNCTION_MARK, True)
    return fn


@dataclass
class EmittedEvent:
    """An event a step function emitted through its context."""

    name: str
    data: Any = None


@dataclass
class StepContext:
    """What a step function gets besides its inputs: the way to emit events."""

    process_name: str
    step_name: str
    attempt: int = 1
    emitted: list[EmittedEvent] = field(default_factory=list)

    async def emit_event(self, name: str, data: Any = None) -> None:
        """Emit `name` with `data`; routes declared with `on_event(name)` deliver it."""
        if not name:
            raise ValueError("event name must not be empty")
        self.emitted.append(EmittedEvent(name, data))


class ProcessStep(Generic[StateT]):
    """Base class of a process step whose durable state is a pydantic model.

    Subclass it as `ProcessStep[MyState]`; `self.state` holds the state, restored before each
    call and persisted in the process after each run of a step function.
    """

    state_type: ClassVar[type[BaseModel]] = NoState
    state: StateT

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            if typing.get_origin(base) is ProcessStep:
                (state_type,) = typing.get_args(base)
                if isinstance(state_type, type) and issubclass(state_type, BaseModel):
                    cls.state_type = state_type

    def __init__(self, state: StateT | None = None) -> None:
        self.state = state if state is not None else self.state_type()  # type: ignore[assignment]

    @classmethod
    @functools.cache
    def step_functions(cls) -> dict[str, list[str]]:
        """The step's functions, each with the names of its input parameters, in order.

        Cached per class (every step activity asks): do not mutate the result.
        """
        functions: dict[str, list[str]] = {}
        for name, member in inspect.getmembers(cls, inspect.isfunction):
            if getattr(member, _STEP_FUNCTION_MARK, False):
                functions[name] = list(inspect.signature(member).parameters)[2:]  # after self, ctx
        return functions

    @classmethod
    def parameter_types(cls, function: str) -> dict[str, Any]:
        """Type hints of a step function's input parameters (Any where none is given)."""
        fn = getattr(cls, function)
        hints = typing.get_type_hints(fn, include_extras=True)  # keeps Annotated constraints
        return {name: hints.get(name, Any) for name in cls.step_functions()[function]}


def import_path(cls: type) -> str:
    """The `module:QualifiedName` path by which definitions refer to a class."""
    return f"{cls.__module__}:{cls.__qualname__}"

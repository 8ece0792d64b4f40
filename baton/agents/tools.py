"""Tools: Python functions an agent may call, registered with `@tool`.

The JSON schema the model sees comes from the function's type hints, its description from the
docstring:

    @tool
    async def lookup_order(order_id: str) -> str:
        \"\"\"Status of an order.\"\"\"

Tools run in the `baton.run_tool` activity on the LLM queue's workers, which import the modules
named in `BATON_TOOL_MODULES` so that their decorators register them.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from pydantic_core import to_json

from baton.errors import InvalidRequest

from ..llm.messages import ToolSpec

F = TypeVar("F", bound=Callable[..., Any])


class ToolArgumentsInvalid(InvalidRequest):
    """The model's arguments do not fit the tool; the message is for the model to fix them."""


@dataclass(frozen=True)
class Tool:
    name: str
    spec: ToolSpec
    function: Callable[..., Any]
    arguments: type[BaseModel]

    async def call(self, arguments_json: str) -> str:
        """Run the tool on the model's JSON arguments; the result as text for the model."""
        try:
            args = self.arguments.model_validate_json(arguments_json or "{}")
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(map(str, err['loc'])) or 'arguments'}: {err['msg']}" for err in e.errors()
            )
            raise ToolArgumentsInvalid(f"invalid arguments for {self.name}: {problems}") from None
        kwargs = {field: getattr(args, field) for field in type(args).model_fields}
        if inspect.iscoroutinefunction(self.function):
            result = await self.function(**kwargs)
        else:
            # Blocking tools run in a thread so the worker's event loop keeps heartbeating.
            result = await asyncio.to_thread(self.function, **kwargs)
        return result if isinstance(result, str) else to_json(result).decode()


_registry: dict[str, Tool] = {}


@overload
def tool(function: F) -> F: ...
@overload
def tool(*, name: str | None = None, description: str | None = None) -> Callable[[F], F]: ...
def tool(function: Any = None, *, name: str | None = None, description: str | None = None) -> Any:
    """Register `function` as a tool agents can call (usable bare or with a name/description)."""

    def register(fn: F) -> F:
        tool_name = name or fn.__name__
        existing = _registry.get(tool_name)
        if existing is not None and existing.function.__qualname__ != fn.__qualname__:
            raise ValueError(f"tool {tool_name!r} is already registered by {existing.function.__module__}")
        arguments = _arguments_model(fn, tool_name)
        schema = arguments.model_json_schema()
        schema.pop("title", None)
        spec = ToolSpec(
            name=tool_name,
            description=description or inspect.getdoc(fn) or "",
            parameters=schema,
        )
        _registry[tool_name] = Tool(tool_name, spec, fn, arguments)
        return fn

    return register(function) if function is not None else register


def _arguments_model(fn: Callable[..., Any], tool_name: str) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for parameter in inspect.signature(fn, eval_str=True).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(f"tool {tool_name!r}: *args and **kwargs cannot be described to a model")
        if parameter.annotation is inspect.Parameter.empty:
            raise TypeError(f"tool {tool_name!r}: parameter {parameter.name!r} needs a type hint")
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[parameter.name] = (parameter.annotation, default)
    return create_model(f"{tool_name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)


def get_tool(name: str) -> Tool | None:
    return _registry.get(name)


def registered_tools() -> dict[str, Tool]:
    return dict(_registry)


def import_modules(modules: Iterable[str]) -> None:
    """Import the modules that register tools (`@tool`) or chat managers (`@chat_manager`)."""
    for module in modules:
        importlib.import_module(module)

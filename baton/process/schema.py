"""Step inputs checked at the door: each parameter's JSON schema, computed when a process is
compiled, and a small validator for those schemas that workflow code runs on event data.

The workflow cannot build pydantic validators for step parameters: that would import step code
inside the Temporal sandbox, on every worker that runs workflows. A JSON schema is plain data
that travels in the compiled process, and checking data against it is a pure function of the
two, so it is deterministic.

The door must never refuse what the step would take, so a parameter gets a schema only when its
type is one this validator mirrors exactly: plain values, lists, tuples, dicts, literals, enums,
unions, dates and times, models, dataclasses and typed dicts of those, and validators that run
after pydantic's own (they only refuse more). A type that transforms its input first (a `before`,
`wrap` or `plain` validator, aliases, whitespace stripping, a custom `__init__`) or one this
validator does not know (`Decimal`, `UUID`, ...) gets no schema: the step activity alone checks it.

The validator covers the keywords pydantic emits (`type`, `properties`, `required`,
`additionalProperties`, `items`, `prefixItems`, `enum`, `const`, `anyOf`, `oneOf`, `allOf`,
`$ref` into `$defs`, and the length, size and range bounds). It follows pydantic's lax mode, as
the step activity does: `"5"` fits an `int`, `"true"` and `1` fit a `bool`, a number fits a
`datetime`. It does not check `pattern`: pydantic's regular expressions are not Python's, and a
Python one can take exponential time on crafted input.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic.errors import PydanticUserError
from pydantic.json_schema import PydanticJsonSchemaWarning
from pydantic_core import SchemaError

JsonSchema = dict[str, Any]

_TRUE = {"1", "on", "t", "true", "y", "yes"}
_FALSE = {"0", "off", "f", "false", "n", "no"}
_TEMPORAL = {"date-time", "date", "time", "duration"}
_EXPECTED = "expected "
_KINDS = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
    type(None): "null",
}


def parameter_schema(hint: Any) -> JsonSchema | None:
    """The JSON schema pydantic gives a parameter type; None when it accepts anything, or when
    the door could not check it exactly (the step activity alone validates such an input)."""
    try:
        adapter = TypeAdapter(hint)
        if not _mirrored(adapter.core_schema):
            return None
        with warnings.catch_warnings():
            # e.g. a default that JSON cannot show: left out of the schema, which is fine here
            warnings.simplefilter("ignore", PydanticJsonSchemaWarning)
            schema = adapter.json_schema()
    except (PydanticUserError, SchemaError):
        return None  # pydantic cannot build it either: the step activity reports the problem
    return schema or None


# pydantic-core schema types whose lax validation this module's validator reproduces.
_MIRRORED_TYPES = frozenset(
    {
        "any", "none", "bool", "int", "float", "str", "list", "tuple", "dict", "literal", "enum",
        "union", "nullable", "default", "datetime", "date", "time", "timedelta",
        "definitions", "definition-ref", "function-after",
        "model", "model-fields", "model-field",
        "dataclass", "dataclass-args", "dataclass-field",
        "typed-dict", "typed-dict-field",
    }
)  # fmt: skip
# Keys whose values say nothing about what validation accepts (or are code, or user data).
_NOT_VALIDATION = frozenset(
    {"default", "default_factory", "metadata", "serialization", "expected", "cls", "ref", "function"}
)


def _mirrored(core: Any) -> bool:
    """Whether pydantic accepts exactly what the JSON schema of `core` allows, or less."""
    if isinstance(core, list):
        return all(_mirrored(item) for item in core)
    if not isinstance(core, dict):
        return True
    if "type" in core and core["type"] not in _MIRRORED_TYPES:
        return False
    if core.get("validation_alias") is not None or core.get("custom_init"):
        return False
    if core.get("strip_whitespace") or core.get("str_strip_whitespace"):
        return False
    return all(_mirrored(value) for key, value in core.items() if key not in _NOT_VALIDATION)


def schema_problems(schema: JsonSchema, value: Any) -> list[str]:
    """What is wrong with JSON `value` for `schema`, as `field.path: problem` (or `problem` for
    the value as a whole); empty when it fits, or when it cannot be told.

    The problems name fields and expected types, never the values: those may be personal data.
    """
    try:
        problems = _check(schema, value, schema, ())
    except Exception:  # workflow code: a surprise here must not stop a run
        return []  # the step activity validates the data with pydantic itself
    return [f"{field_path(path)}: {problem}" if path else problem for path, problem in problems]


def field_path(path: Iterable[str | int]) -> str:
    """`path` as `field.0.name`, each part that is not a name written `[key]`: a dict's keys are
    data, which may be personal, and a field's name is an identifier."""
    return ".".join(
        p if isinstance(p, str) and p.isidentifier() else "[key]" if isinstance(p, str) else str(p)
        for p in path
    )


# Pydantic errors whose message quotes the data: a union's tag, a custom validator's words.
_QUOTING_ERRORS = frozenset({"union_tag_invalid", "value_error", "assertion_error"})


def validation_problems(error: ValidationError, whole: str = "value") -> str:
    """What is wrong, by field, in words that never quote the data (`field_path`); `whole` names
    the value itself."""
    return "; ".join(
        f"{field_path(e['loc']) or whole}: {e['type'] if e['type'] in _QUOTING_ERRORS else e['msg']}"
        for e in error.errors(include_input=False, include_url=False)
    )


Problem = tuple[tuple[str, ...], str]


def _check(schema: Any, value: Any, root: JsonSchema, path: tuple[str, ...]) -> list[Problem]:
    if schema is False:
        return [(path, "not allowed")]
    if not isinstance(schema, dict):
        return []
    if "$ref" in schema:
        problems = _check(_resolve(schema["$ref"], root), value, root, path)
        if problems:
            return problems
    for keyword in ("anyOf", "oneOf"):
        if keyword in schema:
            branches = [_check(s, value, root, path) for s in schema[keyword]]
            if not any(not b for b in branches):
                return _closest(branches, value, path)
    for sub in schema.get("allOf", ()):
        if problems := _check(sub, value, root, path):
            return problems
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        matched = next((c for t in types if (c := _as_type(t, value, schema)) is not _NO), _NO)
        if matched is _NO:
            return [(path, f"{_EXPECTED}{_expected(types)}, got {_kind(value)}")]
        value = matched
    if "const" in schema and value != schema["const"]:
        return [(path, f"must be {schema['const']!r}")]
    if "enum" in schema and value not in schema["enum"]:
        return [(path, f"must be one of {', '.join(repr(v) for v in schema['enum'])}")]
    if isinstance(value, dict):
        return _check_object(schema, value, root, path)
    if isinstance(value, list):
        return _check_array(schema, value, root, path)
    if isinstance(value, str):
        return _check_string(schema, value, path)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _check_number(schema, value, path)
    return []


def _check_object(
    schema: JsonSchema, value: dict[str, Any], root: JsonSchema, path: tuple[str, ...]
) -> list[Problem]:
    problems = [
        ((*path, name), "required field missing") for name in schema.get("required", ()) if name not in value
    ]
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in properties:
            problems += _check(properties[name], item, root, (*path, name))
        elif extra is False:
            problems.append(((*path, name), "unexpected field"))
        else:
            problems += _check(extra, item, root, (*path, name))
    return problems


def _check_array(
    schema: JsonSchema, value: list[Any], root: JsonSchema, path: tuple[str, ...]
) -> list[Problem]:
    problems = _bounds(len(value), schema.get("minItems"), schema.get("maxItems"), "item", path)
    prefix = schema.get("prefixItems", [])
    for i, item in enumerate(value):
        sub = prefix[i] if i < len(prefix) else schema.get("items", True)
        problems += _check(sub, item, root, (*path, str(i)))
    return problems


def _check_string(schema: JsonSchema, value: str, path: tuple[str, ...]) -> list[Problem]:
    return _bounds(len(value), schema.get("minLength"), schema.get("maxLength"), "character", path)


def _check_number(schema: JsonSchema, value: float, path: tuple[str, ...]) -> list[Problem]:
    limits = [
        ("minimum", lambda v, x: v >= x, "at least"),
        ("maximum", lambda v, x: v <= x, "at most"),
        ("exclusiveMinimum", lambda v, x: v > x, "more than"),
        ("exclusiveMaximum", lambda v, x: v < x, "less than"),
    ]
    problems = [
        (path, f"must be {words} {schema[key]}")
        for key, ok, words in limits
        if key in schema and not ok(value, schema[key])
    ]
    step = schema.get("multipleOf")
    if step and not math.isclose(value / step, round(value / step)):
        problems.append((path, f"must be a multiple of {step}"))
    return problems


def _bounds(size: int, low: int | None, high: int | None, unit: str, path: tuple[str, ...]) -> list[Problem]:
    if low is not None and size < low:
        return [(path, f"must have at least {low} {unit}{'s' if low != 1 else ''}")]
    if high is not None and size > high:
        return [(path, f"must have at most {high} {unit}{'s' if high != 1 else ''}")]
    return []


class _Missing:
    pass


_NO: Any = _Missing()


def _as_type(kind: str, value: Any, schema: JsonSchema) -> Any:
    """`value` as JSON type `kind`, converted the way pydantic's lax mode would; `_NO` if it is not."""
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "null":
        return value if value is None else _NO
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if is_number and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        return _NO
    if kind in ("integer", "number"):
        # bool is an int, and pydantic's lax mode takes it as 0 or 1
        number = (
            _number(value) if isinstance(value, str) else value if isinstance(value, int | float) else _NO
        )
        if number is _NO:
            return _NO
        if kind == "number":
            return float(number)
        return int(number) if float(number).is_integer() else _NO
    if kind == "string":
        if isinstance(value, str):
            return value
        # a number is a time, or seconds of a duration (True is one second to pydantic)
        return value if isinstance(value, int | float) and schema.get("format") in _TEMPORAL else _NO
    if kind == "array":
        return value if isinstance(value, list) else _NO
    if kind == "object":
        return value if isinstance(value, dict) else _NO
    return value  # a type this validator does not know: let the step decide


def _number(text: str) -> Any:
    try:
        return float(text.strip())
    except ValueError:
        return _NO


def _resolve(ref: str, root: JsonSchema) -> Any:
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        if not isinstance(node, dict) or part not in node:
            return True  # a reference this validator cannot follow: let the step decide
        node = node[part]
    return node


def _closest(branches: list[list[Problem]], value: Any, path: tuple[str, ...]) -> list[Problem]:
    """The problems of the alternative the value was meant for (one of its type), else what
    the alternatives expected."""
    wrong_type = [[m for p, m in b if p == path and m.startswith(_EXPECTED)] for b in branches]
    typed = [b for b, wrong in zip(branches, wrong_type, strict=True) if not wrong]
    if typed:
        return min(typed, key=len)
    expected = dict.fromkeys(m.removeprefix(_EXPECTED).rsplit(", got ", 1)[0] for w in wrong_type for m in w)
    return [(path, f"{_EXPECTED}{' or '.join(expected)}, got {_kind(value)}")]


_TYPE_NAMES = {
    "null": "null",
    "boolean": "a boolean",
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "array": "an array",
    "object": "an object",
}


def _expected(types: list[str]) -> str:
    return " or ".join(dict.fromkeys(_TYPE_NAMES.get(t, t) for t in types))


def _kind(value: Any) -> str:
    return _KINDS.get(type(value), type(value).__name__)

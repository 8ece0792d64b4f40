"""The builder, validation (every error at once), YAML round trips and Mermaid."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Annotated, Literal
from uuid import UUID

import pytest
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from typing_extensions import TypedDict

from baton.examples.document_generation.process import process as document_generation
from baton.process import (
    NoState,
    ProcessBuilder,
    ProcessDefinitionError,
    ProcessStep,
    RetryOptions,
    StepContext,
    StepHandle,
    load_process,
    step_function,
)
from baton.process.schema import parameter_schema, schema_problems, validation_problems
from tests.steps import (
    ALLOWED,
    Join,
    Step1,
    Step2,
    Step3,
    Upper,
    approval_process,
    linear,
    parent_with_subprocess,
)

EXAMPLE_YAML = Path(__file__).parents[1] / "examples" / "document_generation" / "process.yaml"


def problems_of(builder: ProcessBuilder, allowed: list[str] = ALLOWED) -> list[str]:
    with pytest.raises(ProcessDefinitionError) as raised:
        builder.build(allowed)
    return raised.value.problems


def test_linear_process_builds_with_defaults_resolved() -> None:
    process = linear().build(ALLOWED)
    compiled = process.compiled
    assert list(compiled.steps) == ["Step1", "Step2", "Step3"]
    assert compiled.input_events == ["Start"]
    first = compiled.routes[0].to[0]
    assert (first.step, first.function, first.parameter) == ("Step1", "run", "value")
    options = compiled.steps["Step1"].options
    assert options.retry.max_attempts == 3
    assert options.retry.initial_interval_seconds == 2.0 and options.retry.backoff_coefficient == 2.0


def test_per_step_options_are_kept() -> None:
    b = ProcessBuilder("Options")
    s = b.add_step(Step1, retry=RetryOptions(max_attempts=7), task_queue="heavy", local=False)
    t = b.add_step(Step2, local=True)
    b.on_input_event("Start").send_event_to(s)
    s.on_function_result().send_event_to(t)
    t.on_function_result().stop_process()
    steps = b.build(ALLOWED).compiled.steps
    assert steps["Step1"].options.retry.max_attempts == 7
    assert steps["Step1"].options.task_queue == "heavy"
    assert steps["Step2"].options.local is True


def test_every_problem_is_reported_at_once() -> None:
    b = ProcessBuilder("Broken")
    s1 = b.add_step(Step1)
    b.add_step(Step1)  # duplicate name
    join = b.add_step(Join)
    b.add_step(Step3)  # nothing routes to it
    b.on_input_event("Start").send_event_to(s1)
    s1.on_function_result().send_event_to(join, parameter="left")  # 'right' is never fed
    s1.on_function_result(function="nope").send_event_to(join, parameter="left")
    s1.on_event("Out").send_event_to(join, function="missing")
    s1.on_event("Other").send_event_to(join, parameter="middle")
    s1.on_event("Ghost").send_event_to(StepHandle(b, "Nowhere"))
    s1.on_event("Dangling")
    problems = problems_of(b)
    text = "\n".join(problems)
    assert "step 'Step1': duplicate step name" in text
    assert "step 'Step1' has no function 'nope'" in text
    assert "step 'Join' has no function 'missing' (it has join)" in text
    assert "Join.join has no parameter 'middle' (it has left, right)" in text
    assert "unknown target step 'Nowhere'" in text
    assert "goes nowhere" in text
    assert "Join.join waits for parameter 'right', but no route feeds it" in text
    assert "step 'Step3' is unreachable" in text
    assert "no route ends the process" in text
    assert len(problems) == 9


def test_error_message_lists_problems() -> None:
    b = ProcessBuilder("NoInput")
    s = b.add_step(Step1)
    s.on_function_result().stop_process()
    with pytest.raises(
        ProcessDefinitionError, match=r"process 'NoInput' has 2 problems:\n  - no input event"
    ):
        b.build(ALLOWED)


def test_steps_from_modules_outside_the_allow_list_are_refused() -> None:
    problems = problems_of(linear(), allowed=["baton.examples"])
    assert len(problems) == 3
    assert (
        "from module 'tests.steps', which is not in the allowed step modules ['baton.examples']"
        in problems[0]
    )


def test_fan_in_needs_named_parameters() -> None:
    b = ProcessBuilder("FanIn")
    s, join = b.add_step(Upper), b.add_step(Join)
    b.on_input_event("Start").send_event_to(s)
    s.on_function_result().send_event_to(join)
    join.on_function_result().stop_process()
    assert any("Join.join takes several parameters (left, right)" in p for p in problems_of(b))


def test_a_step_with_several_functions_needs_the_function_named() -> None:
    from baton.examples.document_generation.steps import GenerateDocumentation

    b = ProcessBuilder("Ambiguous")
    g = b.add_step(GenerateDocumentation)
    b.on_input_event("Start").send_event_to(g)
    g.on_function_result().stop_process()
    assert any(
        "has several functions (generate, record, revise); name one with function=" in p
        for p in problems_of(b)
    )


def test_bad_yaml_reports_field_paths() -> None:
    with pytest.raises(ProcessDefinitionError) as raised:
        load_process(
            "name: X\nsteps:\n- name: a\n  step: tests.steps:Step1\n  colour: red\nroutes: []\n", ALLOWED
        )
    assert "steps.0.colour: Extra inputs are not permitted" in raised.value.problems
    with pytest.raises(ProcessDefinitionError, match="not valid YAML"):
        load_process("name: [unclosed", ALLOWED)
    with pytest.raises(ProcessDefinitionError, match="cannot read"):
        load_process(Path("/nonexistent/process.yaml"), ALLOWED)


def test_unimportable_and_non_step_references_are_named() -> None:
    yaml_text = """
name: Refs
steps:
- {name: a, step: "tests.no_such_module:Thing"}
- {name: b, step: "tests.steps:NotThere"}
- {name: c, step: "tests.steps:linear"}
- {name: d, step: "no-colon"}
routes:
- {when: input, name: Start, to: [{step: a}]}
- {from: a, when: result, stop: true}
"""
    with pytest.raises(ProcessDefinitionError) as raised:
        load_process(yaml_text, ALLOWED)
    text = "\n".join(raised.value.problems)
    assert "cannot import module 'tests.no_such_module'" in text
    assert "module 'tests.steps' has no 'NotThere'" in text
    assert "'tests.steps:linear' is not a subclass of ProcessStep" in text
    assert "'no-colon' is not of the form 'package.module:ClassName'" in text


def test_definition_round_trips_through_yaml() -> None:
    for builder in (linear(), approval_process(), parent_with_subprocess()):
        process = builder.build(ALLOWED)
        again = load_process(process.to_yaml(), ALLOWED)
        assert again.to_definition() == process.to_definition()
        assert again.compiled == process.compiled


def test_example_yaml_is_the_python_process() -> None:
    from_yaml = load_process(EXAMPLE_YAML, ["baton.examples"])
    assert from_yaml.to_definition() == document_generation.to_definition()


def test_mermaid_shows_steps_routes_and_the_end() -> None:
    mermaid = approval_process().build(ALLOWED).to_mermaid()
    assert mermaid.startswith("flowchart LR\n")
    assert 'in_ApprovalReceived(["ApprovalReceived"])' in mermaid
    assert 'in_Start -->|"run(value)"| step_Upper' in mermaid
    assert 'step_Upper -->|"result → decide(value)"| step_Gate' in mermaid
    assert 'step_Gate -->|"result"| end_node' in mermaid
    nested = parent_with_subprocess().build(ALLOWED).to_mermaid()
    assert 'step_Child[["Child"]]' in nested


def test_subprocess_functions_are_its_input_events() -> None:
    compiled = parent_with_subprocess().build(ALLOWED).compiled
    child = compiled.steps["Child"]
    assert child.kind == "process" and child.functions == {"Begin": ["data"]}
    assert child.process is not None and list(child.process.steps) == ["Step1", "Step2"]


def test_subprocess_steps_take_no_options() -> None:
    definition = parent_with_subprocess().build(ALLOWED).to_definition()
    definition.steps[0].options.task_queue = "elsewhere"
    with pytest.raises(ProcessDefinitionError, match="a sub-process step takes no options"):
        load_process(definition, ALLOWED)


def test_one_bad_target_does_not_make_the_others_look_unreachable() -> None:
    b = ProcessBuilder("Typo")
    s1, s2 = b.add_step(Step1), b.add_step(Step2)
    b.on_input_event("Start").send_event_to(s1)
    s1.on_function_result().send_event_to(s2).send_event_to(StepHandle(b, "Step_2"))
    s2.on_function_result().stop_process()
    assert problems_of(b) == ["route 2 (result of Step1): unknown target step 'Step_2'"]


def test_invalid_step_options_are_refused_when_added() -> None:
    b = ProcessBuilder("Options")
    with pytest.raises(ProcessDefinitionError, match="timeout_seconds: Input should be greater than 0"):
        b.add_step(Step1, timeout=timedelta(seconds=-5))
    with pytest.raises(ProcessDefinitionError, match="step 'no spaces': name: String should match pattern"):
        b.add_step(Step1, "no spaces")
    with pytest.raises(
        ValidationError, match=r"maximum_interval_seconds \(60.0\) is below initial_interval_seconds"
    ):
        RetryOptions(initial_interval_seconds=120)


def test_step_function_signatures_are_checked() -> None:
    with pytest.raises(TypeError, match=r"must take \(self, ctx, ...inputs\)"):

        @step_function
        async def no_ctx(self, value: str) -> str:
            return value

    with pytest.raises(TypeError, match="inputs must be named parameters"):

        @step_function
        async def star(self, ctx: StepContext, *values: str) -> str:
            return ""

    with pytest.raises(TypeError, match=r"must take \(self, ctx, ...inputs\)"):

        class Static(ProcessStep[NoState]):
            @staticmethod
            @step_function
            async def run(ctx: StepContext, value: str) -> str:
                return value


def test_a_step_re_exported_by_an_allowed_module_is_refused(tmp_path, monkeypatch) -> None:
    (tmp_path / "trusted_reexport.py").write_text("from tests.steps import Step1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yaml_text = """
name: Smuggled
steps:
- {name: a, step: "trusted_reexport:Step1"}
routes:
- {when: input, name: Start, to: [{step: a}]}
- {from: a, when: result, stop: true}
"""
    with pytest.raises(
        ProcessDefinitionError, match=r"defined in module 'tests\.steps', which is not in the allowed"
    ):
        load_process(yaml_text, ["trusted_reexport"])


def test_a_definition_may_name_steps_of_main_which_only_this_process_has(monkeypatch) -> None:
    """`__main__` is always allowed (importing it runs nothing): a script's own YAML can name its
    steps; a step that is not in this process's `__main__` is refused with the reason."""

    class Mirror(ProcessStep[NoState]):
        @step_function
        async def mirror(self, ctx: StepContext, text: str) -> str:
            return text[::-1]

    Mirror.__module__, Mirror.__qualname__ = "__main__", "MirrorOfMain"
    monkeypatch.setattr(sys.modules["__main__"], "MirrorOfMain", Mirror, raising=False)
    yaml_text = """
name: FromMain
steps:
- {name: a, step: "__main__:MirrorOfMain"}
routes:
- {when: input, name: Start, to: [{step: a}]}
- {from: a, when: result, stop: true}
"""
    assert list(load_process(yaml_text, ["baton.examples"]).compiled.steps) == ["a"]
    with pytest.raises(ProcessDefinitionError) as refused:
        load_process(yaml_text.replace("MirrorOfMain", "NotInMain"), ["baton.examples"])
    assert (
        "step '__main__:NotInMain' is defined in __main__, so only a worker in the same process "
        "(baton.testing.ProcessEnvironment) can run it"
    ) in str(refused.value)


class Reply(BaseModel):
    approved: bool
    comment: str | None = None
    priority: Literal["low", "high"] = "low"
    when: datetime | None = None


DOOR_CASES = [
    (bool, True),
    (bool, "yes"),
    (bool, 1),
    (bool, 2),
    (bool, "maybe"),
    (int, "5"),
    (int, 5.0),
    (int, 5.5),
    (int, True),
    (float, "1.5"),
    (float, "nan"),
    (str, 5),
    (str, None),
    (datetime, 1_700_000_000),
    (datetime, "2024-01-01T00:00:00"),
    (list[int], ["1", 2]),
    (list[int], ["x"]),
    (dict[str, int], {"a": "1"}),
    (Literal["a", "b"], "c"),
    (int | None, None),
    (Reply, {"approve": True}),
    (Reply, {"approved": "true", "comment": None, "priority": "high"}),
    (Reply, {"approved": True, "priority": "urgent"}),
    (Reply, "approved"),
]


@pytest.mark.parametrize(("hint", "value"), DOOR_CASES)
def test_the_door_refuses_exactly_what_the_step_would_refuse(hint: object, value: object) -> None:
    """The workflow checks event data against a JSON schema; the step activity then validates
    with pydantic in lax mode. The two must agree, or an event is refused that the step takes."""
    try:
        TypeAdapter(hint).validate_python(value)
        step_takes_it = True
    except ValidationError:
        step_takes_it = False
    schema = parameter_schema(hint)
    assert schema is not None
    assert (not schema_problems(schema, value)) == step_takes_it


class ByAlias(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    user_id: int = Field(alias="userId")


class ByChoices(BaseModel):
    user_id: int = Field(validation_alias=AliasChoices("userId", "uid"))


class Counted(BaseModel):
    count: int

    @field_validator("count", mode="before")
    @classmethod
    def count_items(cls, value: object) -> object:
        return len(value) if isinstance(value, list) else value


class Wrapped(BaseModel):
    amount: int

    @model_validator(mode="before")
    @classmethod
    def unwrap(cls, value: object) -> object:
        return {"amount": value} if isinstance(value, int) else value


class Stripped(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)
    code: str = Field(max_length=2)


class Positive(BaseModel):
    n: int

    @field_validator("n")
    @classmethod
    def positive(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("must be positive")
        return value


class Strict(BaseModel):
    model_config = ConfigDict(strict=True)
    n: int


class Colour(Enum):
    RED = "red"


@dataclass
class Point:
    x: int
    y: int = 0


class Movie(TypedDict):
    title: str
    year: int


# Types the door cannot mirror, values pydantic takes in a way its JSON schema does not show.
TRANSFORMED = [
    (ByAlias, {"user_id": 1}),
    (ByChoices, {"uid": 1}),
    (Counted, {"count": [1, 2]}),
    (Wrapped, 5),
    (Stripped, {"code": " ab "}),
    (Annotated[str, StringConstraints(strip_whitespace=True, max_length=2)], " ab "),
    (Decimal, "1.5"),
    (UUID, "12345678123456781234567812345678"),
]

ANY_VALUES: list[object] = [
    None, True, 0, 1, 2, -1, 5.5, "", "5", " 5 ", "1e3", "1_000", "true", "abc", " ab ", "red",
    "2024-01-01", "2024-01-01T00:00:00", 1_700_000_000, [], [1], ["1", 2], {}, {"a": 1},
    {"1": "a"}, {"n": 1}, {"n": "1"}, {"n": 0}, {"x": 1}, {"x": "1", "y": 2}, {"title": "t", "year": "1999"},
    {"user_id": 1}, {"userId": 1}, {"code": " ab "}, {"count": [1]},
]  # fmt: skip
HINTS: list[object] = [
    bool, int, float, str, datetime, timedelta, list[int], tuple[int, ...], tuple[int, str], dict[str, int],
    dict[int, str], Literal["a", "b"], int | None, int | str, Colour, Point, Movie, Positive, Strict, Reply,
    Annotated[int, Field(gt=0)], Annotated[str, Field(min_length=2, pattern=r"^[a-z]+$")],
    *(hint for hint, _ in TRANSFORMED),
]  # fmt: skip


@pytest.mark.parametrize("hint", HINTS, ids=str)
def test_the_door_never_refuses_what_the_step_would_take(hint: object) -> None:
    schema = parameter_schema(hint)
    for value in ANY_VALUES:
        try:
            TypeAdapter(hint).validate_python(value)
        except ValidationError:
            continue
        assert schema is None or schema_problems(schema, value) == [], f"{value!r} refused"


@pytest.mark.parametrize(("hint", "value"), TRANSFORMED, ids=str)
def test_types_that_transform_their_input_are_left_to_the_step(hint: object, value: object) -> None:
    TypeAdapter(hint).validate_python(value)  # the step takes it...
    assert parameter_schema(hint) is None  # ...and the door, which could not tell, lets it through


def test_the_door_checks_what_it_can_tell_exactly() -> None:
    assert parameter_schema(Positive) is not None  # validators after pydantic's only refuse more
    assert parameter_schema(Strict) is not None
    bounded = parameter_schema(Annotated[int, Field(gt=0)])
    assert bounded is not None and schema_problems(bounded, 0) == ["must be more than 0"]


def test_a_pattern_is_left_to_pydantic_whatever_it_is() -> None:
    # Python's regular expressions backtrack: this one would take longer than the universe on
    # 60 characters; pydantic's (Rust) are linear. A pattern Python cannot compile is no crash.
    schema = {"type": "string", "pattern": "^(a+)+$", "minLength": 1}
    assert schema_problems(schema, "a" * 60 + "!") == []
    assert schema_problems({"type": "string", "pattern": "(?P<x"}, "x") == []
    assert schema_problems(schema, "") == ["must have at least 1 character"]


def test_a_schema_the_validator_cannot_read_lets_the_data_through() -> None:
    assert schema_problems({"type": "integer", "minimum": "zero"}, 5) == []
    assert schema_problems({"$ref": "#/$defs/Missing"}, 5) == []


def test_data_problems_name_the_field_and_not_the_value() -> None:
    schema = parameter_schema(Reply)
    assert schema is not None
    assert schema_problems(schema, {"approve": True}) == ["approved: required field missing"]
    assert schema_problems(schema, {"approved": "alice@example.com", "priority": "urgent"}) == [
        "approved: expected a boolean, got a string",
        "priority: must be one of 'low', 'high'",
    ]
    assert schema_problems(schema, [True]) == ["expected an object, got an array"]


def test_the_compiled_process_carries_the_schemas_of_typed_inputs_only() -> None:
    compiled = approval_process().build(ALLOWED).compiled
    gate = compiled.steps["Gate"].parameter_schemas["decide"]
    assert gate["value"] == {"type": "string"}
    assert gate["approval"]["required"] == ["approved"]
    untyped = ProcessBuilder("Untyped")
    step = untyped.add_step(Untyped)
    untyped.on_input_event("Start").send_event_to(step)
    step.on_function_result().stop_process()
    process = untyped.build(["tests"])
    assert process.compiled.steps["Untyped"].parameter_schemas == {}
    assert process.compiled.event_problems("Start", object()) == []
    nested = parent_with_subprocess().build(ALLOWED).compiled
    assert nested.event_problems("Start", 1) == [
        "Child.Begin (sub-process) Step1.run, parameter 'value': expected a string, got an integer"
    ]


class Untyped(ProcessStep[NoState]):
    @step_function
    async def run(self, ctx: StepContext, anything) -> None:  # type: ignore[no-untyped-def]
        return None


class Bounded(ProcessStep[NoState]):
    @step_function
    async def run(self, ctx: StepContext, n: Annotated[int, Field(gt=0)]) -> None:
        return None


def test_annotated_constraints_are_checked_at_the_door() -> None:
    b = ProcessBuilder("Bounded")
    step = b.add_step(Bounded)
    b.on_input_event("Start").send_event_to(step)
    step.on_function_result().stop_process()
    compiled = b.build(["tests"]).compiled
    assert compiled.event_problems("Start", 0) == ["Bounded.run, parameter 'n': must be more than 0"]
    assert compiled.event_problems("Start", 1) == []


def test_problems_with_step_data_name_fields_and_never_the_data() -> None:
    # A dict's keys are data, and a union's tag and a validator's words quote it.
    class Contact(BaseModel):
        kind: Literal["email"]
        address: str

    class Other(BaseModel):
        kind: Literal["other"]

    class Inputs(BaseModel):
        scores: dict[str, int]
        contact: Annotated[Contact | Other, Field(discriminator="kind")]

    with pytest.raises(ValidationError) as raised:
        Inputs.model_validate({"scores": {"ana@example.com": "high"}, "contact": {"kind": "ana@example.com"}})
    problems = validation_problems(raised.value)
    assert (
        problems
        == "scores.[key]: Input should be a valid integer, unable to parse string as an integer; contact: union_tag_invalid"
    )
    schema = TypeAdapter(dict[str, int]).json_schema()
    assert schema_problems({"type": "object", "additionalProperties": False}, {"ana@example.com": 1}) == [
        "[key]: unexpected field"
    ]
    assert schema_problems(schema, {"ana@example.com": "high"}) == [
        "[key]: expected an integer, got a string"
    ]

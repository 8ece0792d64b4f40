"""Bad input, fuzzed: process definitions (YAML text and dicts) and event data. Whatever comes
in ends in the documented error naming the problem, never a crash or a hang."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.exceptions import ApplicationError

from baton.activities.llm.providers import _json
from baton.agents.registry import AgentDefinitionError, load_agent_file
from baton.process import ProcessDefinitionError, load_process
from baton.process.runtime import check_event
from baton.starter.cli.main import _json_option
from baton.starter.cli.usage import UsageError
from baton.workflows.orchestrations import _arguments
from tests.steps import ALLOWED, approval_process, fan_out_fan_in, parent_with_subprocess

VALID = [
    p.build(ALLOWED).to_definition().model_dump(mode="json", by_alias=True, exclude_defaults=True)
    for p in (fan_out_fan_in(), approval_process(), parent_with_subprocess())
]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place inside a JSON value: keys of mappings, indexes of lists."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


@st.composite
def mutated_definitions(draw: st.DrawFn) -> Any:
    """A valid definition with a few of its places replaced by arbitrary JSON, or removed."""
    definition = copy.deepcopy(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths(definition)))
        if not path:
            return draw(JSON)
        parent = definition
        for part in path[:-1]:
            parent = parent[part]
        if draw(st.booleans()):
            parent[path[-1]] = draw(JSON)
        elif isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent.pop(path[-1])
    return definition


def loads_or_names_the_problem(source: Any) -> None:
    try:
        load_process(source, ALLOWED)
    except ProcessDefinitionError as e:
        assert e.problems and all(isinstance(p, str) and p for p in e.problems)


@FUZZ
@given(mutated_definitions())
def test_a_mutated_definition_loads_or_names_its_problems(definition: Any) -> None:
    loads_or_names_the_problem(definition)


@FUZZ
@given(st.text(max_size=300))
def test_any_yaml_text_loads_or_names_its_problems(text: str) -> None:
    loads_or_names_the_problem(text)


def test_yaml_nested_too_deeply_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ProcessDefinitionError, match="nested too deeply"):
        load_process("[" * 5000 + "]" * 5000, ALLOWED)
    agent_file = tmp_path / "deep.yaml"
    agent_file.write_text("name: " + "[" * 5000 + "]" * 5000)
    with pytest.raises(AgentDefinitionError, match="nested too deeply"):
        load_agent_file(agent_file)


@FUZZ
@given(st.sampled_from(["ApprovalReceived", "Start", "Nope", ""]), JSON)
def test_event_data_is_accepted_or_rejected_with_a_reason(event: str, data: Any) -> None:
    compiled = approval_process().build(ALLOWED).compiled
    rejection = check_event(compiled, event, data)
    if rejection is not None:
        assert rejection.reason in {"UnknownEvent", "InvalidEventData"} and rejection.event == event


def test_json_nested_too_deeply_from_a_model_or_a_person_is_refused_by_name() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    assert _arguments(deep) == {}  # in workflow code: a RecursionError would stall the run
    with pytest.raises(ApplicationError, match="nested too deeply"):
        _json(deep, "openai")  # the provider's answer: malformed, tried again
    with pytest.raises(UsageError, match="nested too deeply"):
        _json_option(deep)

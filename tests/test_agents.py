"""Agents as data, tools from type hints, agent steps in processes, and `baton agent run`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel

from baton.agents import (
    AgentDefinitionError,
    AgentNotFound,
    AgentRegistry,
    AgentSpec,
    LlmRetryOptions,
    load_agent_file,
)
from baton.agents.tools import get_tool, tool
from baton.examples import AGENTS as EXAMPLE_AGENTS
from baton.examples.document_generation.process import process as document_generation
from baton.process import ProcessBuilder, ProcessDefinitionError, RetryOptions, load_process
from baton.settings import BatonSettings
from baton.starter.devserver import GRPC_PORT, port_open
from baton.testing import ProcessEnvironment
from tests.test_cli import baton

SEED_AGENTS = {
    "DataExtraction",
    "Analysis",
    "ReportGeneration",
    "MarketAnalysis",
    "CompetitorAnalysis",
    "TrendAnalysis",
    "Developer",
    "QA",
    "BusinessAnalyst",
    "ProjectManager",
}


def test_the_seed_agents_ship_as_examples() -> None:
    registry = AgentRegistry.from_dirs([EXAMPLE_AGENTS])
    assert SEED_AGENTS | {"Writer", "Reviewer"} == set(registry)
    assert registry["MarketAnalysis"].tools == ["market_size"]
    assert all(agent.model == "local:baton" for agent in registry.values())


def test_agent_file_errors_name_the_file_and_every_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: 9lives\ninstructions: ''\nmodel: gpt-4o\ntemperature: 3\ncolour: blue\n")

    with pytest.raises(AgentDefinitionError) as error:
        load_agent_file(bad)

    message = str(error.value)
    assert message.startswith(f"{bad}: ")
    for field in ("name:", "instructions:", "model:", "temperature:", "colour:"):
        assert field in message
    assert "provider:model" in message


def test_an_agent_file_sets_how_long_llm_calls_ride_out_an_outage(tmp_path: Path) -> None:
    path = tmp_path / "patient.yaml"
    path.write_text(
        "name: Patient\ninstructions: Wait it out.\n"
        "retry: {window_seconds: 86400, maximum_interval_seconds: 600}\n"
    )

    retry = load_agent_file(path).retry

    assert retry.window == timedelta(days=1)
    assert retry.policy().maximum_interval == timedelta(minutes=10)
    assert retry.policy().initial_interval == timedelta(seconds=2)  # the seed's fast tries come first


def test_a_retry_window_too_short_for_one_attempt_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "hasty.yaml"
    path.write_text("name: Hasty\ninstructions: Hurry.\ntimeout_seconds: 120\nretry: {window_seconds: 60}\n")

    with pytest.raises(
        AgentDefinitionError, match=r"retry.window_seconds \(60.0\) is shorter than timeout_seconds"
    ):
        load_agent_file(path)


def test_step_retry_options_given_to_an_agent_keep_the_long_window() -> None:
    spec = AgentSpec(
        name="A", instructions="x", retry=RetryOptions(initial_interval_seconds=0.5, max_attempts=2)
    )

    assert spec.retry.initial_interval_seconds == 0.5 and spec.retry.max_attempts == 2
    assert spec.retry.window == LlmRetryOptions().window


def test_an_unknown_agent_lists_the_known_ones() -> None:
    with pytest.raises(
        AgentNotFound, match="no agent named 'Nobody'; known agents: Analysis, BusinessAnalyst"
    ):
        AgentRegistry.from_dirs([EXAMPLE_AGENTS])["Nobody"]


class Address(BaseModel):
    city: str
    postcode: str | None = None


@tool(name="ship_parcel", description="Ship a parcel to an address.")
def _ship(address: Address, weight_kg: float, express: bool = False) -> str:
    return f"{address.city}:{weight_kg}:{express}"


async def test_tool_schemas_come_from_type_hints_and_arguments_are_validated() -> None:
    shipped = get_tool("ship_parcel")
    assert shipped is not None
    schema = shipped.spec.parameters
    assert schema["required"] == ["address", "weight_kg"]
    assert schema["properties"]["weight_kg"]["type"] == "number"
    assert schema["properties"]["express"]["default"] is False
    assert await shipped.call('{"address": {"city": "Oslo"}, "weight_kg": 2}') == "Oslo:2.0:False"
    with pytest.raises(ValueError, match="weight_kg: Input should be a valid number"):
        await shipped.call('{"address": {"city": "Oslo"}, "weight_kg": "heavy"}')


def test_agent_steps_are_checked_when_the_process_compiles() -> None:
    b = ProcessBuilder("Agents")
    b.add_agent("Nobody")
    inline = b.add_agent(AgentSpec(name="Inline", instructions="You are inline."))
    b.on_input_event("Start").send_event_to(inline)
    inline.on_function_result().stop_process()

    with pytest.raises(ProcessDefinitionError, match="no agent named 'Nobody'"):
        b.build(agents=AgentRegistry.from_dirs([EXAMPLE_AGENTS]))


def test_document_generation_uses_writer_and_reviewer_agents() -> None:
    steps = document_generation.compiled.steps
    assert steps["Writer"].kind == steps["Reviewer"].kind == "agent"
    assert steps["Writer"].agent is not None and steps["Writer"].agent.name == "Writer"
    yaml_version = load_process(
        Path(__file__).parents[1] / "examples" / "document_generation" / "process.yaml"
    )
    assert yaml_version.to_definition() == document_generation.to_definition()


async def test_document_generation_writes_and_reviews_with_agents(env: ProcessEnvironment) -> None:
    run = await env.start(document_generation, "Start", {"name": "Baton", "features": ["durable runs"]})
    await run.send_event("ApprovalReceived", {"approved": True, "comment": "ship it"})
    result = await run.result()

    text = result.output["text"]
    assert text.startswith("[simulated by Baton's local model] Technical writer")
    for section in ("## Overview", "## Features", "## Getting started", "## Troubleshooting"):
        assert section in text
    assert result.output["revision"] == 2
    assert result.run_counts["Writer"] == 3 and result.run_counts["Reviewer"] == 3


async def test_agent_run_on_the_running_server(env: ProcessEnvironment, temporal) -> None:
    result = await baton(
        env.settings,
        "agent",
        "run",
        "MarketAnalysis",
        "--input",
        "How big is the robotics market?",
        BATON_TEMPORAL_ADDRESS=temporal.client.service_client.config.target_host,
    )
    assert result.returncode == 0, result.stderr
    assert "[simulated by Baton's local model] Market analyst" in result.stdout
    assert "2 LLM call(s), 1 tool call(s)" in result.stdout
    assert "/namespaces/default/workflows/agent-MarketAnalysis-" in result.stdout


async def test_ad_hoc_agent_run_starts_an_embedded_server_when_none_runs(settings: BatonSettings) -> None:
    if port_open("127.0.0.1", GRPC_PORT):
        pytest.fail("port 7233 is taken by another Temporal; this test needs it free")
    result = await baton(
        settings,
        "agent",
        "run",
        "--model",
        "local:baton",
        "--instructions",
        "You are a privacy officer.",
        "--pii",
        "mask",
        "--input",
        "Check the consent of jane@example.com",
    )
    assert result.returncode == 0, result.stderr
    assert "starting an embedded dev server" in result.stdout
    assert "Privacy officer" in result.stdout and "simulated by the local model" in result.stdout
    assert not port_open("127.0.0.1", GRPC_PORT)


async def test_agent_run_explains_bad_usage(settings: BatonSettings) -> None:
    missing = await baton(settings, "agent", "run", "Nobody", "--input", "hi")
    assert missing.returncode == 2
    assert "no agent named 'Nobody'" in missing.stderr
    bad_model = await baton(
        settings, "agent", "run", "--instructions", "x", "--model", "gpt4", "--input", "hi"
    )
    assert bad_model.returncode == 2
    assert "must be written provider:model" in bad_model.stderr

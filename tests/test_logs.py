"""JSON log lines: one schema, the run's and the trace's fields, PII masked; the seed's
agent-execution record from a real run, written once however often the run replays."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from baton.agents import AgentSpec
from baton.settings import BatonSettings
from baton.telemetry import logs as telemetry_logs
from baton.telemetry.logs import CONTENT_CHARS, JsonFormatter, MaskedStreamHandler
from baton.testing import ProcessEnvironment
from baton.workflows.agent import AgentWorkflow
from tests.steps import ALLOWED, chatty


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """What the root logger writes as JSON lines (INFO and up) during a test."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(service="baton-test"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    workflow.logger.workflow_info_on_message = False  # as `configure_logging` sets it for JSON
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        workflow.logger.workflow_info_on_message = True


def parsed(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]


def test_a_line_has_the_schema_its_fields_and_its_trace_with_pii_masked(json_lines: io.StringIO) -> None:
    logger = logging.getLogger("tests.logs")
    with TracerProvider().get_tracer("tests").start_as_current_span("request") as span:
        logger.warning(
            "mail from %s", "ana@example.com", extra={"principal": "svc-1", "note": "bob@example.com"}
        )
    try:
        raise ValueError("no account for carol@example.com")
    except ValueError:
        logger.exception("lookup failed")
    first, second = parsed(json_lines)[-2:]
    context = span.get_span_context()
    assert first["message"] == "mail from [EMAIL]" and first["note"] == "[EMAIL]"
    assert (
        first["level"] == "WARNING" and first["logger"] == "tests.logs" and first["service"] == "baton-test"
    )
    assert first["principal"] == "svc-1" and str(first["time"]).endswith("+00:00")
    assert first["trace_id"] == f"{context.trace_id:032x}" and first["span_id"] == f"{context.span_id:016x}"
    assert "trace_id" not in second and "ValueError: no account for [EMAIL]" in str(second["exception"])
    assert "@example.com" not in json_lines.getvalue()


async def test_a_steps_own_log_lines_name_its_run_process_step_and_attempt(
    temporal: WorkflowEnvironment, settings: BatonSettings, json_lines: io.StringIO
) -> None:
    async with ProcessEnvironment(settings=settings, client=temporal.client) as env:
        run = await env.start(chatty().build(ALLOWED), "Start", "frank@example.com")
        assert (await run.result()).output == "hello frank@example.com"
    line = next(line for line in parsed(json_lines) if line["logger"] == "tests.steps.chatty")
    assert line["message"] == "greeting [EMAIL]"
    assert line["process"] == "Chatty" and line["step"] == "Greeter"
    assert line["workflow_id"] == run.id and line["activity"] == "baton.run_step" and line["attempt"] == 1
    assert line["task_queue"] == settings.workflows_queue and line["workflow_type"] == "ProcessWorkflow"


async def test_an_agent_run_writes_its_execution_record_once(
    temporal: WorkflowEnvironment, settings: BatonSettings, json_lines: io.StringIO
) -> None:
    agent = AgentSpec(name=f"Logged{uuid.uuid4().hex[:6]}", instructions="Answer briefly.")
    async with ProcessEnvironment(settings=settings, client=temporal.client) as env:
        handle = await env.client.start_agent(agent, "hello from dave@example.com")
        result = await handle.result()
        history = await handle.fetch_history()
        await Replayer(workflows=[AgentWorkflow], data_converter=env.temporal.data_converter).replay_workflow(
            history
        )
    records = [line for line in parsed(json_lines) if line.get("agent") == agent.name]
    assert len(records) == 1, records  # the replay wrote none
    record = records[0]
    assert record["operation"] == "AgentWorkflow" and record["outcome"] == "success"
    assert str(record["message"]).endswith(" s")  # the run's fields are fields, not in the message
    assert record["workflow_id"] == handle.id and record["run_id"] == handle.result_run_id
    assert record["task_queue"] == settings.workflows_queue and record["workflow_type"] == "AgentWorkflow"
    assert isinstance(record["duration_s"], float) and record["output_tokens"] == result.usage.output_tokens
    assert "input" not in record and "output" not in record  # prompts and answers: only when enabled
    assert "dave@example.com" not in json_lines.getvalue()


async def test_with_telemetry_content_the_record_has_the_input_and_answer_masked_and_cut(
    temporal: WorkflowEnvironment, settings: BatonSettings, json_lines: io.StringIO
) -> None:
    settings = settings.model_copy(update={"telemetry_content": True})
    agent = AgentSpec(name=f"Told{uuid.uuid4().hex[:6]}", instructions="Answer briefly.")
    question = "write to erin@example.com about " + "x" * 3000
    try:
        async with ProcessEnvironment(settings=settings, client=temporal.client) as env:
            await env.client.run_agent(agent, question)
    finally:
        telemetry_logs.content_recorded = False  # the process-wide switch the workers set
    record = next(line for line in parsed(json_lines) if line.get("agent") == agent.name)
    assert str(record["input"]).startswith("write to [EMAIL] about xxx")
    assert len(str(record["input"])) == CONTENT_CHARS + 1 and str(record["input"]).endswith("…")
    assert record["output"] and "erin@example.com" not in json_lines.getvalue()


def test_a_record_that_cannot_be_written_is_reported_masked(capsys: pytest.CaptureFixture[str]) -> None:
    # The stdlib's report of a failed record prints its raw arguments to stderr.
    handler = MaskedStreamHandler(io.StringIO())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("baton.tests.broken")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("customer %s %s", "ana@example.com")  # one argument short
    finally:
        logger.removeHandler(handler)
    reported = capsys.readouterr().err
    assert "ana@example.com" not in reported
    assert "could not be written" in reported and "customer %s %s" in reported and "[EMAIL]" in reported

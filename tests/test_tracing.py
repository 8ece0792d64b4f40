"""One trace from the API request through the workflow and its activities to the HTTP request to
the LLM provider, with GenAI attributes; and one for a process step. Run in a process of its own
(tests/tracing_probe.py), since tracing is process-wide. A `baton` command is one trace too,
exported over OTLP (gRPC or HTTP) to a real receiver as the `OTEL_*` variables say."""

from __future__ import annotations

import asyncio
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from baton.settings import BatonSettings
from baton.testing import ProcessEnvironment
from tests.otlp_collector import GrpcCollector, HttpCollector
from tests.test_cli import baton

REPO = Path(__file__).resolve().parents[1]


async def test_one_trace_runs_from_the_api_request_to_the_providers_http_request(
    temporal: WorkflowEnvironment, tmp_path: Path
) -> None:
    address = temporal.client.service_client.config.target_host
    probe = await asyncio.create_subprocess_exec(
        sys.executable,
        str(REPO / "tests" / "tracing_probe.py"),
        address,
        str(tmp_path / "baton"),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(probe.communicate(), 240)
    assert probe.returncode == 0, out.decode()[-3000:] + err.decode()[-3000:]
    *spans, last = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in spans:
        by_trace[span["trace_id"]].append(span)

    def trace_of(name: str) -> list[dict[str, Any]]:
        return by_trace[next(s["trace_id"] for s in spans if s["name"] == name)]

    api = trace_of("POST /v1/agents/{name}/runs")
    names = [s["name"] for s in api]
    for expected in (
        "StartWorkflow:AgentWorkflow",
        "RunWorkflow:AgentWorkflow",
        "RunActivity:baton.llm_complete",
    ):
        assert expected in names, (expected, names)
    chat = next(s for s in api if s["name"] == "chat gpt-test")
    assert chat["attributes"]["gen_ai.system"] == "openai"
    assert chat["attributes"]["gen_ai.request.model"] == "gpt-test"
    assert chat["attributes"]["gen_ai.usage.output_tokens"] > 0
    provider_call = [s for s in api if str(s["attributes"].get("http.url", "")).endswith("/chat/completions")]
    assert provider_call and provider_call[0]["parent_id"] == chat["span_id"]  # inside the LLM span
    assert any(s["attributes"].get("db.system") for s in api)  # the run.start audit entry's SQL
    assert not any("hello" in json.dumps(s["attributes"]) for s in api)  # no prompt text

    assert last["audited"]["run.start"] == api[0]["trace_id"]  # the audit's correlation ID is the trace
    process = trace_of("StartWorkflow:ProcessWorkflow")
    assert any(s["name"] == "chat gpt-test" for s in process)
    assert last["run_id"].startswith("process-")


@pytest.mark.parametrize("collector_type", [GrpcCollector, HttpCollector], ids=["grpc", "http"])
async def test_a_baton_command_is_one_trace_exported_over_otlp(
    env: ProcessEnvironment,
    temporal: WorkflowEnvironment,
    collector_type: type[GrpcCollector | HttpCollector],
) -> None:
    address = temporal.client.service_client.config.target_host
    with collector_type() as collector:
        result = await baton(
            env.settings,
            "process",
            "run",
            "tests.steps:cli_approval",
            "--event",
            "Start",
            "--data",
            '"grace@example.com"',
            stdin='ApprovalReceived\n{"approved": true}\n',
            BATON_TEMPORAL_ADDRESS=address,
            OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL="grpc" if collector_type is GrpcCollector else "http/protobuf",
            OTEL_SERVICE_NAME="baton-cli",
        )
        assert result.returncode == 0, result.stderr
        spans = collector.spans  # the command flushed them before it exited
    root = next(s for s in spans if s.name == "baton process run")
    assert root.parent_id == "" and root.service == "baton-cli"
    assert root.attributes["baton.command"] == "baton process run"
    start = next(s for s in spans if s.name == "StartWorkflow:ProcessWorkflow")
    assert start.trace_id == root.trace_id and start.parent_id == root.span_id
    assert not any("grace@example.com" in str(s.attributes) for s in spans)  # arguments stay out


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER='jaeger' is not an exporter Baton has"),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
            },
            "OTLP protocol 'http/json' is not supported for traces",
        ),
    ],
)
async def test_a_tracing_setting_baton_cannot_honour_stops_the_command(
    settings: BatonSettings, variables: dict[str, str], message: str
) -> None:
    result = await baton(settings, "process", "show", "tests.steps:cli_approval", **variables)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr

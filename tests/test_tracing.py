"""One trace from the API request through the workflow and its activities to the HTTP request to
the LLM provider, with GenAI attributes; and one for a process step. Run in a process of its own
(tests/tracing_probe.py), since tracing is process-wide."""

from __future__ import annotations

import asyncio
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment

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

"""Run in its own process by tests/test_tracing.py (tracing is process-wide): an API request
that runs an agent against the fake LLM server, and a process run with an agent step, with an
in-memory span exporter; prints every span as a JSON line.

    python tests/tracing_probe.py TEMPORAL_ADDRESS DATA_DIR
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path

import httpx
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from baton.process import ProcessBuilder
from baton.security.dev_issuer import DevIssuer
from baton.settings import BatonSettings
from baton.starter.client import BatonClient
from baton.starter.devserver import api_server
from baton.telemetry.tracing import enable_tracing
from baton.temporal import connect
from baton.testing import free_port
from baton.workers.worker import running_workers
from tests.llm_server import FakeLlmServer

AGENT = """
name: Traced
instructions: Answer briefly.
model: openai:gpt-test
"""


async def main(address: str, data_dir: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    assert enable_tracing(provider)
    agents = data_dir / "agents"
    agents.mkdir(parents=True)
    (agents / "traced.yaml").write_text(AGENT)
    suffix = uuid.uuid4().hex[:8]
    with FakeLlmServer() as llm:
        settings = BatonSettings(
            data_dir=data_dir,
            temporal_address=address,
            workflows_queue=f"trace-workflows-{suffix}",
            steps_queue=f"trace-steps-{suffix}",
            llm_queue=f"trace-llm-{suffix}",
            agent_dirs=[agents],
            step_modules=["tests"],
            openai_base_url=llm.url,
            openai_api_key=SecretStr("sk-test-key"),
        )
        client = await connect(settings)
        baton = BatonClient(client, settings)
        token = DevIssuer.load(settings).issue("tracer", ["Agent"], 600)
        async with (
            running_workers(client, settings),
            api_server(settings, port=free_port(), client=baton) as url,
            httpx.AsyncClient(base_url=url, timeout=60) as http,
        ):
            answer = await http.post(
                "/v1/agents/Traced/runs?wait=true",
                json={"input": "hello"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert answer.status_code == 200, answer.text
            builder = ProcessBuilder(f"TracedProcess{suffix}")
            step = builder.add_agent(baton.agents["Traced"])
            builder.on_input_event("Start").send_event_to(step)
            step.on_function_result().stop_process()
            run = await baton.start_process(builder.build(), "Start", "hi")
            await run.result()
            audited = await baton.audit_trail.about([answer.json()["run_id"]])
        await baton.close()
    for span in exporter.get_finished_spans():
        context, parent = span.get_span_context(), span.parent
        print(
            json.dumps(
                {
                    "name": span.name,
                    "trace_id": f"{context.trace_id:032x}",
                    "span_id": f"{context.span_id:016x}",
                    "parent_id": f"{parent.span_id:016x}" if parent else None,
                    "attributes": dict(span.attributes or {}),
                },
                default=str,
            )
        )
    correlation = {entry.action: entry.correlation_id for entry in audited}
    print(json.dumps({"run_id": run.id, "agent_run_id": answer.json()["run_id"], "audited": correlation}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
    sys.stdout.flush()
    os._exit(0)  # sdk-python issue 300

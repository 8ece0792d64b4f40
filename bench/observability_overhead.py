"""What logs, metrics and tracing cost, measured side by side in one process.

On one embedded dev server (Baton's configuration), two sets of workers: one behind a client
without Temporal's tracing interceptor, with Baton's loggers at WARNING ("off"), and one behind a
client with it, every span recorded and batched to an exporter that drops them, and Baton's
loggers writing JSON lines at INFO (to memory) ("on"). Metrics are on in both: Baton always
counts. Interleaved, after a warm-up:
  - start-and-wait of the benchmarks' 3-step process (default steps);
  - start-and-wait of an agent run on the built-in local model (one LLM activity).

Run: .venv/bin/python bench/observability_overhead.py
The last line: observability_overhead process_ratio=<on/off p50> agent_ratio=<on/off p50>
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # workers import the steps by module name

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from temporalio.client import Client
from three_steps import three_steps

from baton.agents import AgentSpec
from baton.persistence.db import engine_from_settings
from baton.settings import BatonSettings
from baton.starter.client import BatonClient
from baton.telemetry.logs import JsonFormatter
from baton.telemetry.tracing import client_interceptors, enable_tracing
from baton.temporal import settings_converter
from baton.testing import start_dev_server
from baton.workers.worker import running_workers

RUNS = int(os.environ.get("BENCH_RUNS", 60))
WARMUP = int(os.environ.get("BENCH_WARMUP", 10))


class Dropped(SpanExporter):
    """Takes every span and keeps none: the cost of recording and batching, not of a network."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def settings_for(data_dir: Path, suffix: str) -> BatonSettings:
    return BatonSettings(
        data_dir=data_dir,
        workflows_queue=f"bench-obs-workflows-{suffix}",
        steps_queue=f"bench-obs-steps-{suffix}",
        llm_queue=f"bench-obs-llm-{suffix}",
        step_modules=["three_steps"],
    )


async def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="baton-bench-obs-"))
    off_settings, on_settings = settings_for(data_dir, "off"), settings_for(data_dir, "on")
    env = await start_dev_server()
    address = env.client.service_client.config.target_host

    async def client(settings: BatonSettings) -> Client:
        converter = settings_converter(settings, engine_from_settings(settings))
        return await Client.connect(address, data_converter=converter, interceptors=client_interceptors())

    off_client = await client(off_settings)  # made before tracing is on: no interceptor
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropped()))
    enable_tracing(provider)
    on_client = await client(on_settings)

    loggers = [logging.getLogger("baton"), logging.getLogger("temporalio")]  # the agent record: the latter
    json_lines = logging.StreamHandler(io.StringIO())  # written and formatted, then dropped
    json_lines.setFormatter(JsonFormatter())
    for logger in loggers:
        logger.addHandler(json_lines)
        logger.propagate = False

    off, on = BatonClient(off_client, off_settings), BatonClient(on_client, on_settings)
    agent = AgentSpec(name="Observed", instructions="Answer briefly.")

    def timed(baton: BatonClient, level: int, job: str) -> Callable[[], Awaitable[float]]:
        process = three_steps("BenchObservability", local=False).build(baton.settings.step_modules)

        async def run() -> float:
            for logger in loggers:
                logger.setLevel(level)
            start = time.perf_counter()
            if job == "process":
                await (await baton.start_process(process, "Start", "x")).result()
            else:
                await baton.run_agent(agent, "hello")
            return time.perf_counter() - start

        return run

    async with running_workers(off_client, off_settings), running_workers(on_client, on_settings):
        results: dict[str, dict[str, list[float]]] = {}
        for job in ("process", "agent"):
            kinds = {"off": timed(off, logging.WARNING, job), "on": timed(on, logging.INFO, job)}
            times: dict[str, list[float]] = {kind: [] for kind in kinds}
            for n in range(WARMUP + RUNS):
                order = list(kinds) if n % 2 == 0 else list(reversed(kinds))
                for kind in order:
                    took = await kinds[kind]()
                    if n >= WARMUP:
                        times[kind].append(took)
            results[job] = times
    await env.shutdown()

    ratios = {}
    for job, times in results.items():
        off_p50, on_p50 = (statistics.median(times[kind]) * 1000 for kind in ("off", "on"))
        ratios[job] = on_p50 / off_p50
        print(f"{job}: p50 off {off_p50:.1f} ms, on {on_p50:.1f} ms, ratio {ratios[job]:.3f} ({RUNS} each)")
    print(f"observability_overhead process_ratio={ratios['process']:.3f} agent_ratio={ratios['agent']:.3f}")
    sys.stdout.flush()
    os._exit(0)  # sdk-python issue 300: no crash at interpreter exit


if __name__ == "__main__":
    asyncio.run(main())

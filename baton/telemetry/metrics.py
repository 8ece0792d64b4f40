"""Prometheus metrics, defined once and shared by every part of a Baton process.

Every label value is bounded: names from configuration (agents, processes, steps, providers,
models, endpoints), patterns, outcomes and error types; never a run ID, a user or free text.
`metrics_text` is what each process's `/metrics` answers: these, the process's own (memory, CPU),
and the Temporal SDK's (task latencies, schedule-to-start, slots) from `sdk_runtime`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TYPE_CHECKING

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from baton.aio import in_background

if TYPE_CHECKING:
    from temporalio.client import Client

    from baton.settings import BatonSettings

log = logging.getLogger(__name__)

LLM_CALLS = Counter(
    "baton_llm_calls_total", "LLM calls by provider, model and outcome.", ["provider", "model", "outcome"]
)
LLM_TOKENS = Counter(
    "baton_llm_tokens_total",
    "Tokens used, by provider, model, agent and kind (input|output).",
    ["provider", "model", "agent", "kind"],
)
LLM_CACHE = Counter(
    "baton_llm_cache_total",
    "Response-cache lookups by level (l1|l2) and result (hit|miss).",
    ["level", "result"],
)
CIRCUIT_STATE = Gauge(
    "baton_llm_circuit_state", "Circuit breaker per endpoint: 0 closed, 1 half-open, 2 open.", ["endpoint"]
)
ALERTS = Counter("baton_alerts_total", "Alerts of suspicious activity delivered, by rule.", ["rule"])

# The seed's PerformanceMonitor: agent.execution.time, .success and .error.
AGENT_DURATION = Histogram(
    "baton_agent_execution_duration_seconds",
    "One agent's work on one input (its LLM and tool calls), by agent and operation (the "
    "workflow type that ran it).",
    ["agent", "operation"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)
AGENT_SUCCESS = Counter("baton_agent_execution_success_total", "Agent executions that answered.", ["agent"])
AGENT_ERRORS = Counter(
    "baton_agent_execution_errors_total",
    "Agent executions that failed, by error type.",
    ["agent", "error_type"],
)

PROCESS_RUNS = Counter(
    "baton_process_runs_total",
    "Process runs by process and outcome (started, completed, failed, cancelled).",
    ["process", "outcome"],
)
STEP_DURATION = Histogram(
    "baton_process_step_duration_seconds",
    "One step function's run, by process and step.",
    ["process", "step"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
ORCHESTRATION_ROUNDS = Counter(
    "baton_orchestration_rounds_total", "Rounds of orchestrations, by pattern.", ["pattern"]
)
RETENTION_DUE = Gauge(
    "baton_retention_records_due", "Processing records past their due date, not on hold, not yet deleted."
)
SUBJECT_REQUESTS = Gauge(
    "baton_subject_requests",
    "Data-subject requests running, by state (open, overdue: past one month).",
    ["state"],
)
AUDIT_CHAIN_VERIFIED = Gauge(
    "baton_audit_chain_verified", "1 when the last check of the audit chain passed, 0 when it found a break."
)
CODEC_REQUESTS = Counter(
    "baton_codec_requests_total",
    "Codec server calls by operation (decode, encode) and outcome (ok, refused, failed).",
    ["operation", "outcome"],
)

_sdk_metrics: str | None = None
"""Where this process's Temporal SDK runtime serves its metrics, once `sdk_runtime` made it."""
_runtime: Runtime | None = None


def sdk_runtime() -> Runtime:
    """This process's Temporal runtime, exporting the SDK's metrics to Prometheus on a loopback
    port of its own, which `metrics_text` merges into the process's `/metrics`. Made once."""
    global _runtime, _sdk_metrics
    if _runtime is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            address = f"127.0.0.1:{s.getsockname()[1]}"
        _runtime = Runtime(
            telemetry=TelemetryConfig(
                metrics=PrometheusConfig(
                    bind_address=address, counters_total_suffix=True, durations_as_seconds=True
                )
            )
        )
        _sdk_metrics = f"http://{address}/metrics"
    return _runtime


async def metrics_text() -> bytes:
    """This process's metrics in Prometheus's text format: Baton's, the process's, the SDK's."""
    text = generate_latest(REGISTRY)
    if _sdk_metrics is not None:
        try:
            async with httpx.AsyncClient(timeout=5) as http:
                text += (await http.get(_sdk_metrics)).content
        except httpx.HTTPError:  # Baton's own still answer
            pass
    return text


def resident_bytes() -> int:
    """This process's resident memory (what `process_resident_memory_bytes` exports too)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def watch_memory(limit_bytes: int, every_seconds: float = 30.0) -> None:
    """Warn in the log when this process's resident memory goes above `limit_bytes` (the seed's
    MemoryOptimizationService: 1 GB), once per crossing, and again once it came back under."""
    above = False
    while True:
        rss = resident_bytes()
        if rss > limit_bytes and not above:
            log.warning(
                "memory: %d MB resident, above the %d MB warning threshold (BATON_MEMORY_WARNING_MB)",
                rss // 2**20,
                limit_bytes // 2**20,
            )
        elif rss <= limit_bytes and above:
            log.info("memory: %d MB resident, back under %d MB", rss // 2**20, limit_bytes // 2**20)
        above = rss > limit_bytes
        await asyncio.sleep(every_seconds)


def memory_watched(settings: BatonSettings) -> contextlib.AbstractAsyncContextManager[None]:
    """`watch_memory` at `BATON_MEMORY_WARNING_MB`, in the background for the length of a block."""
    return in_background(watch_memory(settings.memory_warning_mb * 2**20))


def metrics_app(settings: BatonSettings, client: Client) -> Starlette:
    """A worker's HTTP endpoint (`BATON_METRICS_PORT`): `/metrics` for Prometheus, and for
    Kubernetes' probes `/healthz` (the process serves) and `/readyz` (its Temporal frontend
    answers a health check, 503 when it does not). It watches the process's memory while it serves."""

    async def metrics(request: Request) -> Response:
        return Response(await metrics_text(), media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "alive"})

    async def readyz(request: Request) -> JSONResponse:
        try:
            serving = await client.service_client.check_health(timeout=timedelta(seconds=2))
        except Exception as e:  # any failure to reach Temporal means "not ready", with its kind
            return JSONResponse({"status": "unavailable", "temporal": type(e).__name__}, status_code=503)
        if not serving:
            return JSONResponse({"status": "unavailable", "temporal": "not serving"}, status_code=503)
        return JSONResponse({"status": "ready"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with memory_watched(settings):
            yield

    routes = [Route("/metrics", metrics), Route("/healthz", healthz), Route("/readyz", readyz)]
    return Starlette(routes=routes, lifespan=lifespan)

"""OpenTelemetry traces: one trace from an API request (or a `baton` command) through
start-workflow, the workflow, each activity, to the HTTP request to the LLM provider.

Configured by the standard variables: `OTEL_TRACES_EXPORTER` (`otlp`, `console`, `none`),
`OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (OTLP over HTTP; an endpoint
alone means `otlp`), `OTEL_SERVICE_NAME`, and the rest the SDK reads. Nothing configured, nothing
is exported and nothing is instrumented: tracing costs nothing then.

When on, Temporal's `TracingInterceptor` goes on every client Baton connects (and so on its
workers), and httpx, Redis, every SQLAlchemy engine made afterwards and the API's FastAPI app
are instrumented; turn it on before those are made. LLM calls get
a span that follows the GenAI semantic conventions (`llm_span`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

_enabled = False
tracer = trace.get_tracer("baton")


def enable_tracing(provider: TracerProvider | None = None, service: str = "baton") -> bool:
    """Turn tracing on for this process: with `provider` (a test's, say), else with one built from
    the `OTEL_*` variables; False, and nothing done, when they configure no exporter. Once."""
    global _enabled
    if _enabled:
        return True
    if provider is None:
        exporter = _configured_exporter()
        if exporter is None:
            return False
        name = os.environ.get("OTEL_SERVICE_NAME", service)
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _instrument_libraries()
    _enabled = True
    return True


def tracing_enabled() -> bool:
    return _enabled


def current_trace_id() -> str | None:
    """The trace ID of the span current here, as hex; None outside any (or with tracing off)."""
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


def client_interceptors() -> list[Any]:
    """The interceptors a Temporal client (and its workers) gets: the tracing one when on."""
    if not _enabled:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor()]


def instrument_app(app: Any) -> None:
    """Trace each request of a FastAPI app, when tracing is on."""
    if _enabled:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")


@contextlib.contextmanager
def llm_span(provider: str, model: str, agent: str) -> Iterator[trace.Span]:
    """A span for one LLM call, named and attributed as the GenAI semantic conventions say;
    the caller adds the usage and finish reason. No prompt or completion text goes in it."""
    with tracer.start_as_current_span(
        f"chat {model}",
        kind=trace.SpanKind.CLIENT,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.system": provider,
            "gen_ai.request.model": model,
            "gen_ai.agent.name": agent,
        },
    ) as span:
        yield span


def _configured_exporter() -> SpanExporter | None:
    chosen = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if chosen == "console":
        return ConsoleSpanExporter()
    if chosen == "otlp" or (not chosen and endpoint):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    return None


def _instrument_libraries() -> None:
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    HTTPXClientInstrumentor().instrument()
    RedisInstrumentor().instrument()
    # Every engine made from now on (`persistence.db` calls `create_async_engine` through its
    # module, so the wrapper applies). Its version check stops at SQLAlchemy 2.0; the engine
    # events it uses are the same in 2.1.
    SQLAlchemyInstrumentor().instrument(skip_dep_check=True)

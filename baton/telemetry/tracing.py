"""OpenTelemetry traces: one trace from an API request (or a `baton` command) through
start-workflow, the workflow, each activity, to the HTTP request to the LLM provider.

Configured by the standard variables: `OTEL_TRACES_EXPORTER` (`otlp`, `console`, `none`),
`OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (an endpoint alone means
`otlp`), `OTEL_EXPORTER_OTLP_PROTOCOL` / `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` (`http/protobuf`, the
default, or `grpc`), `OTEL_SERVICE_NAME`, and the rest the SDK reads (headers, certificates,
timeouts). Nothing configured, nothing is exported and nothing is instrumented: tracing costs
nothing then. A value Baton cannot honour is a `ConfigurationError`, not silence.

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

from baton.errors import ConfigurationError

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


def flush_tracing() -> None:
    """Export the spans still buffered and stop exporting: before a process leaves."""
    provider = trace.get_tracer_provider()
    if _enabled and isinstance(provider, TracerProvider):
        provider.shutdown()


@contextlib.contextmanager
def command_span(command: str) -> Iterator[trace.Span | None]:
    """The root span of one `baton` command (its arguments stay out: they may hold personal
    data); what the command does, a workflow start say, is traced inside it."""
    if not _enabled:
        yield None
        return
    with tracer.start_as_current_span(command, attributes={"baton.command": command}) as span:
        yield span


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
    chosen = _variable("OTEL_TRACES_EXPORTER").lower()
    if chosen == "console":
        return ConsoleSpanExporter()
    if chosen == "otlp" or (
        not chosen and _variable("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
    ):
        return _otlp_exporter()
    if chosen in ("", "none"):
        return None
    raise ConfigurationError(
        f"OTEL_TRACES_EXPORTER={chosen!r} is not an exporter Baton has: use otlp, console or none"
    )


def _otlp_exporter() -> SpanExporter:
    protocol = _variable("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL").lower()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as OverGrpc

        return OverGrpc()
    if protocol in ("", "http/protobuf"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as OverHttp

        return OverHttp()
    raise ConfigurationError(
        f"OTLP protocol {protocol!r} is not supported for traces: use grpc or http/protobuf"
    )


def _variable(*names: str) -> str:
    """The first of the environment variables `names` that is set, stripped; '' when none is."""
    return next((value.strip() for name in names if (value := os.environ.get(name, "")).strip()), "")


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

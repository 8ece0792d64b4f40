"""Logging that masks PII, as text for a terminal or JSON lines for a deployment.

Whatever a message, its arguments, its fields or a traceback hold, the line written says
"[EMAIL]", not the address:

    configure_logging("DEBUG")
    logging.getLogger(__name__).info("signed in: %s", user.email)  # ... signed in: [EMAIL]

A JSON line has one schema: `time`, `level`, `logger`, `message`, `service`, and whichever apply
of `workflow_id`, `run_id`, `workflow_type`, `process`, `step`, `agent`, `activity`, `attempt`,
`task_queue`, `trace_id`, `span_id`, `principal`, `duration_s`, and the fields a caller passes
in `extra`. Temporal's workflow and activity loggers fill the run's fields (and log nothing
while a run replays); so does any logger used inside an activity, a step's own say, with
`log_fields` adding the process, step or agent; the OpenTelemetry span current when the line is
written fills the trace's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal

from opentelemetry import trace
from temporalio import activity, workflow

from baton.security.pii import default_masker

# The name marks the handler `configure_logging` installs, so a second call finds it.
_HANDLER_NAME = "baton-masked-stderr"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
"""A log record's own attributes: anything else on a record came from `extra`."""
_TEMPORAL = {
    "workflow_id": "workflow_id",
    "run_id": "run_id",
    "workflow_type": "workflow_type",
    "task_queue": "task_queue",
    "activity_type": "activity",
    "attempt": "attempt",
}
"""The fields of Temporal's `temporal_workflow` / `temporal_activity` extras a line keeps, renamed."""

LogFormat = Literal["auto", "json", "text"]
URL_LOGGERS = ("httpx", "httpcore")
"""Libraries that log each request's full URL at INFO; kept at WARNING whatever the level."""


CONTENT_CHARS = 1000
"""The most of a prompt or an answer that a log record or a span keeps (`telemetry_content`)."""
content_recorded = False
"""Whether this process records prompts and answers (`telemetry_content`, set by its workers)."""


def excerpt(text: str) -> str:
    """`text` as telemetry may keep it: PII-masked, cut to `CONTENT_CHARS`."""
    masked = default_masker().mask(text)
    return masked if len(masked) <= CONTENT_CHARS else masked[:CONTENT_CHARS] + "…"


_context_fields: ContextVar[Mapping[str, Any]] = ContextVar("baton_log_fields", default=MappingProxyType({}))


@contextlib.contextmanager
def log_fields(**fields: Any) -> Iterator[None]:
    """Put `fields` (`process="Onboarding", step="Review"`, say) on every JSON line written in
    this block, by any logger: a step's or a tool's own lines get them too."""
    token = _context_fields.set({**_context_fields.get(), **fields})
    try:
        yield
    finally:
        _context_fields.reset(token)


def _activity_fields() -> dict[str, Any]:
    """The running activity's fields, for lines not written through `activity.logger`."""
    if not activity.in_activity():
        return {}
    info = activity.info()
    return {
        "workflow_id": info.workflow_id,
        "run_id": info.workflow_run_id,
        "workflow_type": info.workflow_type,
        "task_queue": info.task_queue,
        "activity": info.activity_type,
        "attempt": info.attempt,
    }


class MaskedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler whose report of a record it could not write is masked like the record:
    the stdlib's report prints the record's raw message and arguments to stderr."""

    def handleError(self, record: logging.LogRecord) -> None:
        if logging.raiseExceptions and sys.stderr:
            error = sys.exc_info()[1]
            report = (
                f"baton: a log record could not be written ({type(error).__name__}: {error}): "
                f"logger {record.name}, {record.pathname}:{record.lineno}, "
                f"message {record.msg!r}, arguments {record.args!r}\n"
            )
            sys.stderr.write(default_masker().mask(report))


class MaskingFormatter(logging.Formatter):
    """A `logging.Formatter` that masks PII in the finished line: the message with its arguments
    filled in, the exception text and the stack, all at once."""

    def format(self, record: logging.LogRecord) -> str:
        return default_masker().mask(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line (the schema above), every text in it PII-masked."""

    def __init__(self, service: str = "baton") -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
        }
        for name in ("temporal_workflow", "temporal_activity"):
            for key, value in (getattr(record, name, None) or {}).items():
                if key in _TEMPORAL:
                    line[_TEMPORAL[key]] = value
        if "activity" not in line:
            line.update(_activity_fields())
        line.update(_context_fields.get())
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            line["trace_id"], line["span_id"] = f"{span.trace_id:032x}", f"{span.span_id:016x}"
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("temporal_") and key not in line:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(_masked(line), default=str, ensure_ascii=False)


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return default_masker().mask(value)
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(item) for item in value]
    return value


def configure_logging(level: str = "INFO", format: LogFormat = "auto", service: str = "baton") -> None:
    """Log records of `level` and above to stderr, PII masked, on the root logger: JSON lines, or
    text when `format` says so or, by default, when stderr is a terminal.

    Calling it again changes the level and the format, and adds no second handler.
    """
    root = logging.getLogger()
    root.setLevel(level.upper())
    handler = next((h for h in root.handlers if h.get_name() == _HANDLER_NAME), None)
    if handler is None:
        handler = MaskedStreamHandler()  # stderr
        handler.set_name(_HANDLER_NAME)
        root.addHandler(handler)
    as_text = format == "text" or (format == "auto" and sys.stderr.isatty())
    handler.setFormatter(MaskingFormatter(_FORMAT) if as_text else JsonFormatter(service))
    # Temporal appends the run's fields to the message; a JSON line has them as fields already.
    workflow.logger.workflow_info_on_message = as_text
    activity.logger.activity_info_on_message = as_text
    for chatty in URL_LOGGERS:  # their INFO lines are whole URLs: a webhook's may be its secret
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))

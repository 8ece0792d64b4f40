"""Prometheus metrics, defined once and shared by every part of a worker process."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

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

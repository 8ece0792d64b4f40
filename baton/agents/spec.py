"""`AgentSpec`: what an agent is (instructions, model, tools, policies), as data.

Agents are written in YAML files under the configured agent folders or built in Python; both
end up as this model, which travels into workflows unchanged.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..compliance.processing import Processing
from ..llm.messages import CachePolicy, validate_model_reference
from ..retry import RetryOptions
from ..security.pii import PiiPolicy

DEFAULT_RETRY_WINDOW_SECONDS = 6 * 3600.0
"""How long an LLM call keeps retrying a provider outage before the agent fails: hours, because
provider outages last hours, and an outage must delay a run, not kill it."""


class LlmRetryOptions(RetryOptions):
    """How an agent's LLM calls ride out provider failures: one Temporal retry policy.

    Each delay is the one before times `backoff_coefficient`, from `initial_interval_seconds` up to
    `maximum_interval_seconds`; attempts are unlimited until `window_seconds` have passed since the
    call was first scheduled (Temporal's schedule-to-close timeout). With the defaults the seed's
    three fast tries come first (at 0, 2 and 6 s), then 14, 30, 62, 126, 254 and 510 s, then one
    every 5 minutes, for 6 hours: the end of an outage is noticed at most as long after it as the
    outage lasted, and never more than 5 minutes late. Only transient failures are retried (429, 5xx, timeouts,
    broken connections, malformed answers, an open circuit breaker); a provider's `Retry-After`
    sets the delay before the next attempt, and a call that meets an open breaker waits until it
    half-opens, so the breaker costs time, not retries. Rejected requests (400, 401, 403, 404) fail
    at once.

    The window is a field of the agent, not a worker setting, because workflow code schedules the
    call and must decide its timeouts deterministically from its input.
    """

    max_attempts: int | None = Field(
        None,
        ge=1,
        description="A cap on attempts, the first and any that met an open breaker included. "
        "Unset by default: the window bounds retries.",
    )
    maximum_interval_seconds: float = Field(
        300.0, gt=0, description="Cap on one delay: how late, at most, the end of an outage is noticed."
    )
    window_seconds: float | None = Field(
        DEFAULT_RETRY_WINDOW_SECONDS,
        gt=0,
        description="How long a call keeps retrying, from its first attempt; then the agent fails.",
    )


class AgentSpec(BaseModel):
    """One agent: who it is, which model it uses, what it may call, how its data is treated."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$", description="Unique; used in summaries and metrics."
    )
    description: str = Field("", description="What the agent is for (shown to managers that pick agents).")
    instructions: str = Field(min_length=1, description="The system prompt.")
    model: str = Field(
        "local:baton", description="provider:model, e.g. openai:gpt-4o-mini, anthropic:claude-sonnet-4-5."
    )
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(1024, ge=1, le=200_000)
    tools: list[str] = Field(
        default_factory=list, description="Names of `@tool` functions the agent may call."
    )
    cache: CachePolicy = "auto"
    pii: PiiPolicy = Field(
        PiiPolicy.MASK, description="What happens to PII before text leaves for the provider."
    )
    roles: list[str] = Field(
        default_factory=list, description="Roles allowed to use the agent; empty: any caller."
    )
    max_turns: int = Field(8, ge=1, le=200, description="LLM calls one run may make before it gives up.")
    stream: bool = Field(
        False, description="Stream tokens from the provider, heartbeating while they arrive."
    )
    heartbeat_seconds: float = Field(
        30.0,
        gt=0,
        description="An LLM or tool call whose worker is silent this long is presumed lost and tried "
        "again; calls heartbeat while they wait, so cancelling a run reaches them this soon. A "
        "streamed call heartbeats per token once they flow: one that stalls is tried again too.",
    )
    retry: LlmRetryOptions = Field(default_factory=LlmRetryOptions)
    timeout_seconds: float = Field(120.0, gt=0, description="Limit on one LLM call attempt.")
    processing: Processing | None = Field(
        None,
        description="Why runs of this agent process a data subject's data, when started with one "
        "(required then, here or in the start call).",
    )

    _check_model = field_validator("model")(validate_model_reference)

    @field_validator("retry", mode="before")
    @classmethod
    def _from_step_retry(cls, value: Any) -> Any:
        # Steps' `RetryOptions` name the same knobs; what one sets carries over, the rest keeps
        # the LLM defaults (a long window, not three attempts).
        return value.model_dump(exclude_unset=True) if isinstance(value, RetryOptions) else value

    @model_validator(mode="after")
    def _window_holds_an_attempt(self) -> AgentSpec:
        self.retry.check_window(self.timeout_seconds)
        return self

    @field_validator("tools")
    @classmethod
    def _unique_tools(cls, tools: list[str]) -> list[str]:
        duplicates = sorted({t for t in tools if tools.count(t) > 1})
        if duplicates:
            raise ValueError(f"tools listed twice: {', '.join(duplicates)}")
        return tools

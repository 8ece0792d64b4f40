"""`AgentSpec`: what an agent is (instructions, model, tools, policies), as data.

Agents are written in YAML files under the configured agent folders or built in Python; both
end up as this model, which travels into workflows unchanged.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..llm.messages import CachePolicy, validate_model_reference
from ..retry import RetryOptions
from ..security.pii import PiiPolicy


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
        30.0, gt=0, description="While streaming: a call silent this long is presumed stuck and tried again."
    )
    retry: RetryOptions = Field(default_factory=RetryOptions)
    timeout_seconds: float = Field(120.0, gt=0, description="Limit on one LLM call attempt.")

    _check_model = field_validator("model")(validate_model_reference)

    @field_validator("tools")
    @classmethod
    def _unique_tools(cls, tools: list[str]) -> list[str]:
        duplicates = sorted({t for t in tools if tools.count(t) > 1})
        if duplicates:
            raise ValueError(f"tools listed twice: {', '.join(duplicates)}")
        return tools

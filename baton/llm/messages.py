"""Messages, tool calls and LLM requests as pydantic models.

These cross the workflow/activity boundary, so they are plain data: no clients, no I/O. The
shape follows the OpenAI chat format (the most widely spoken); providers translate.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from ..security.pii import PiiPolicy

CachePolicy = Literal["auto", "always", "never"]
"""`auto` caches deterministic requests (temperature 0); `always` also caches the others."""

PROVIDERS = ("openai", "azure", "ollama", "vllm", "anthropic", "local")
"""Model providers, the part before the colon in a model reference like `openai:gpt-4o-mini`."""


class ModelRef(BaseModel):
    """A parsed `provider:model` reference."""

    provider: str
    model: str

    @classmethod
    def parse(cls, reference: str) -> ModelRef:
        provider, sep, model = reference.partition(":")
        if not sep or not model:
            raise ValueError(f"model {reference!r} must be written provider:model, e.g. openai:gpt-4o-mini")
        if provider not in PROVIDERS:
            raise ValueError(f"model provider {provider!r} is unknown; use one of {', '.join(PROVIDERS)}")
        return cls(provider=provider, model=model)

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}"


def validate_model_reference(reference: str) -> str:
    ModelRef.parse(reference)
    return reference


class ToolCall(BaseModel):
    """The model asks for one tool to run; `arguments` is the JSON text it wrote."""

    id: str
    name: str
    arguments: str = "{}"


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = Field(None, description="On a tool message: the call it answers.")
    name: str | None = Field(None, description="On a tool message: the tool's name.")


class ToolSpec(BaseModel):
    """What the model is told about a tool: its name, purpose and JSON-schema parameters."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
        )


class LlmRequest(BaseModel):
    """One call to a model: the input of the `baton.llm_complete` activity."""

    model: str = Field(description="provider:model, e.g. openai:gpt-4o-mini or local:baton")
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[str] = Field(
        default_factory=list, description="Names of registered tools; the LLM worker adds their schemas."
    )
    inline_tools: list[ToolSpec] = Field(
        default_factory=list,
        description="Tools the calling workflow handles itself (handoffs, completion), sent as given.",
    )
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(1024, ge=1)
    stream: bool = Field(False, description="Stream tokens (SSE), heartbeating as they arrive.")
    cache: CachePolicy = "auto"
    pii: PiiPolicy = PiiPolicy.OFF
    agent: str = Field("", description="The agent that asks; for metrics and the local model.")

    _check_model = field_validator("model")(validate_model_reference)

    @property
    def ref(self) -> ModelRef:
        return ModelRef.parse(self.model)

    @property
    def cacheable(self) -> bool:
        """Whether the same request may be answered from the cache."""
        return self.cache == "always" or (self.cache == "auto" and self.temperature == 0)


class LlmResponse(BaseModel):
    message: ChatMessage
    usage: Usage = Field(default_factory=Usage)
    finish_reason: str = "stop"
    model: str = ""
    cached: Literal["l1", "l2"] | None = Field(None, description="Which cache level answered, if any.")
    simulated: bool = Field(False, description="True when the built-in local model wrote the answer.")

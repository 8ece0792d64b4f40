"""The LLM wire model shared by workflows and activities: messages, tools, requests, responses."""

from .messages import (
    PROVIDERS,
    ChatMessage,
    LlmRequest,
    LlmResponse,
    ModelRef,
    ToolCall,
    ToolSpec,
    Usage,
)

__all__ = [
    "PROVIDERS",
    "ChatMessage",
    "LlmRequest",
    "LlmResponse",
    "ModelRef",
    "ToolCall",
    "ToolSpec",
    "Usage",
]

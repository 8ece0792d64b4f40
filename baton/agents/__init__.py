"""Agents: specs, the registry, tools, and the agent loop that workflows call."""

from .registry import AgentDefinitionError, AgentNotFound, AgentRegistry, load_agent_file
from .runtime import AgentRunResult
from .spec import AgentSpec, LlmRetryOptions
from .tools import tool

__all__ = [
    "AgentDefinitionError",
    "AgentNotFound",
    "AgentRegistry",
    "AgentRunResult",
    "AgentSpec",
    "LlmRetryOptions",
    "load_agent_file",
    "tool",
]

"""Agents: specs, the registry, tools, and the agent loop that workflows call."""

from .registry import AgentDefinitionError, AgentNotFound, AgentRegistry, load_agent_file
from .runtime import AgentRunResult
from .spec import AgentSpec
from .tools import tool

__all__ = [
    "AgentDefinitionError",
    "AgentNotFound",
    "AgentRegistry",
    "AgentRunResult",
    "AgentSpec",
    "load_agent_file",
    "tool",
]

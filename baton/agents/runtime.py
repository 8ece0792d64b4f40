"""What agent runs exchange with Temporal: activity names, inputs and results."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ..llm.messages import ChatMessage, ToolCall, Usage
from .spec import AgentSpec

LLM_COMPLETE_ACTIVITY = "baton.llm_complete"
RUN_TOOL_ACTIVITY = "baton.run_tool"
AGENT_WORKFLOW = "AgentWorkflow"


class ToolInvocation(BaseModel):
    agent: str
    call: ToolCall


class ToolOutcome(BaseModel):
    """A tool's answer for the model; `error` when the model should change its call."""

    content: str
    error: bool = False


class AgentRunInput(BaseModel):
    """Run one agent on one input: the `AgentWorkflow` input."""

    agent: AgentSpec
    input: str = Field(min_length=1)
    llm_queue: str = "baton-llm"


class AgentRunResult(BaseModel):
    agent: str
    answer: str
    messages: list[ChatMessage] = Field(description="The conversation, tool calls and results included.")
    usage: Usage = Field(default_factory=Usage)
    llm_calls: int = 0
    tool_calls: int = 0
    simulated: bool = Field(False, description="Whether the built-in local model wrote any of it.")
    control: ToolCall | None = Field(
        None, description="The control tool (handoff, completion) the agent called, which ended its turn."
    )

"""The agent loop, as workflow code any workflow can call: LLM, tools (in parallel), LLM again.

Every LLM call and every tool call is its own activity, so a crash resumes after the last one
that finished. A tool name the model invents is reported back to it and never executed.

Both kinds of call heartbeat while they wait (`agent.heartbeat_seconds`): a lost worker's call is
tried again elsewhere that soon, and cancelling a run reaches the call in flight, which stops
waiting on the provider or the tool. LLM calls retry transient failures for `agent.retry.window`
(see `LlmRetryOptions`); a tool is retried three times, 2^n s apart, and then its error goes back
to the model, which may try another way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from pydantic_core import to_json
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

from ..llm.messages import ChatMessage, LlmRequest, LlmResponse, ToolCall, ToolSpec, Usage
from ..telemetry import logs as telemetry_logs
from ..telemetry.logs import excerpt
from ..telemetry.metrics import AGENT_DURATION, AGENT_ERRORS, AGENT_SUCCESS
from .runtime import LLM_COMPLETE_ACTIVITY, RUN_TOOL_ACTIVITY, AgentRunResult, ToolInvocation, ToolOutcome
from .spec import AgentSpec

TOOL_TIMEOUT = timedelta(minutes=2)
TOOL_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=2), backoff_coefficient=2.0)
"""Tools are user code: Baton cannot tell their outage from their bug, and the model is told of the
failure after the seed's three tries, so a tool's failure never stalls an agent for long."""


async def run_agent(
    agent: AgentSpec,
    conversation: str | list[ChatMessage],
    *,
    llm_queue: str,
    label: str = "",
    control_tools: Sequence[ToolSpec] = (),
) -> AgentRunResult:
    """Run `agent` until it answers without tool calls, or fail after `agent.max_turns` calls.

    `conversation` is the user's input, or earlier messages to continue from (without the system
    prompt, which comes from the agent). `label` prefixes the activity summaries in the UI.
    `control_tools` are offered besides the agent's own; calling one ends the turn at once and
    the call is returned as `control`, for the calling workflow to act on (a handoff, say).

    Each execution is measured (`baton_agent_execution_*`) and logged (the seed's agent-execution
    record: agent, operation, duration, tokens, outcome), once: not again when a run replays.
    """
    started = workflow.time()
    try:
        result = await _agent_loop(agent, conversation, llm_queue, label, control_tools)
    except BaseException as e:
        _executed(agent, started, conversation, error=_error_type(e))
        raise
    _executed(agent, started, conversation, usage=result.usage, answer=result.answer)
    return result


def _executed(
    agent: AgentSpec,
    started: float,
    conversation: str | list[ChatMessage],
    *,
    usage: Usage | None = None,
    answer: str | None = None,
    error: str | None = None,
) -> None:
    if workflow.unsafe.is_replaying():
        return
    operation, seconds = workflow.info().workflow_type, workflow.time() - started
    content = {}
    if telemetry_logs.content_recorded:  # only logging reads it: no workflow decision does
        asked = (
            conversation
            if isinstance(conversation, str)
            else (conversation[-1].content if conversation else "")
        )
        content = {"input": excerpt(asked), "output": excerpt(answer or "")}
    AGENT_DURATION.labels(agent.name, operation).observe(seconds)
    if error is None:
        AGENT_SUCCESS.labels(agent.name).inc()
    else:
        AGENT_ERRORS.labels(agent.name, error).inc()
    workflow.logger.info(
        "agent %s %s in %.3f s",
        agent.name,
        "answered" if error is None else f"failed ({error})",
        seconds,
        extra={
            "agent": agent.name,
            "operation": operation,
            "duration_s": round(seconds, 3),
            "input_tokens": usage.input_tokens if usage else 0,
            "output_tokens": usage.output_tokens if usage else 0,
            "outcome": "success" if error is None else error,
            **content,
        },
    )


def _error_type(e: BaseException) -> str:
    """A bounded name for why an agent failed: the application error's type, else the class."""
    if is_cancelled_exception(e):
        return "Cancelled"
    cause = e.cause if isinstance(e, ActivityError) and e.cause is not None else e
    if isinstance(cause, ApplicationError) and cause.type:
        return cause.type
    return type(cause).__name__


async def _agent_loop(
    agent: AgentSpec,
    conversation: str | list[ChatMessage],
    llm_queue: str,
    label: str,
    control_tools: Sequence[ToolSpec],
) -> AgentRunResult:
    control_names = {t.name for t in control_tools}
    history = (
        [ChatMessage(role="user", content=conversation)]
        if isinstance(conversation, str)
        else list(conversation)
    )
    messages = [ChatMessage(role="system", content=agent.instructions), *history]
    usage, simulated, tool_calls = Usage(), False, 0
    prefix = f"{label} · " if label and label != agent.name else ""
    for turn in range(1, agent.max_turns + 1):
        response = await complete(
            agent,
            messages,
            llm_queue=llm_queue,
            summary=f"{prefix}{agent.name} · turn {turn}",
            inline_tools=control_tools,
        )
        usage, simulated = usage + response.usage, simulated or response.simulated
        messages.append(response.message)
        calls = response.message.tool_calls
        control = next((c for c in calls if c.name in control_names), None)
        if not calls or control is not None:
            return AgentRunResult(
                agent=agent.name,
                answer=response.message.content,
                messages=messages[1:],
                usage=usage,
                llm_calls=turn,
                tool_calls=tool_calls,
                simulated=simulated,
                control=control,
            )
        tool_calls += len(calls)
        outcomes = await asyncio.gather(*(_run_tool(agent, call, llm_queue, prefix) for call in calls))
        messages += [
            ChatMessage(role="tool", content=outcome.content, tool_call_id=call.id, name=call.name)
            for call, outcome in zip(calls, outcomes, strict=True)
        ]
    raise ApplicationError(
        f"agent {agent.name!r} did not reach an answer within {agent.max_turns} LLM calls (max_turns)",
        type="AgentTurnLimit",
        non_retryable=True,
    )


def as_prompt(data: Any) -> str:
    """What an agent step receives as the user message: text as is, anything else as JSON."""
    return data if isinstance(data, str) else to_json(data, indent=2).decode()


async def complete(
    agent: AgentSpec,
    messages: list[ChatMessage],
    *,
    llm_queue: str,
    summary: str,
    inline_tools: Sequence[ToolSpec] = (),
) -> LlmResponse:
    """One LLM call for `agent` as an activity: each attempt limited by `agent.timeout_seconds`,
    retried by `agent.retry.policy()` until `agent.retry.window` has passed since it was scheduled."""
    request = LlmRequest(
        model=agent.model,
        messages=messages,
        tools=agent.tools,
        inline_tools=list(inline_tools),
        temperature=agent.temperature,
        max_tokens=agent.max_tokens,
        stream=agent.stream,
        cache=agent.cache,
        pii=agent.pii,
        agent=agent.name,
    )
    return await workflow.execute_activity(
        LLM_COMPLETE_ACTIVITY,
        request,
        result_type=LlmResponse,
        task_queue=llm_queue,
        start_to_close_timeout=timedelta(seconds=agent.timeout_seconds),
        schedule_to_close_timeout=agent.retry.window,
        heartbeat_timeout=timedelta(seconds=agent.heartbeat_seconds),
        retry_policy=agent.retry.policy(),
        summary=summary,
    )


async def _run_tool(agent: AgentSpec, call: ToolCall, llm_queue: str, prefix: str) -> ToolOutcome:
    if call.name not in agent.tools:
        offered = ", ".join(agent.tools) or "none"
        return ToolOutcome(
            content=f"Error: there is no tool named {call.name!r}. Available tools: {offered}.", error=True
        )
    try:
        return await workflow.execute_activity(
            RUN_TOOL_ACTIVITY,
            ToolInvocation(agent=agent.name, call=call),
            result_type=ToolOutcome,
            task_queue=llm_queue,
            start_to_close_timeout=TOOL_TIMEOUT,
            heartbeat_timeout=timedelta(seconds=agent.heartbeat_seconds),
            retry_policy=TOOL_RETRY,
            summary=f"{prefix}{agent.name} · tool {call.name}",
        )
    except ActivityError as e:
        if is_cancelled_exception(e):  # the run is being cancelled: stop, do not tell the model
            raise
        # The tool failed after its retries: the model hears about it and may try another way.
        return ToolOutcome(content=f"Error: tool {call.name!r} failed: {e.cause or e}", error=True)

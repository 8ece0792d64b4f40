"""The `baton.run_tool` activity: one tool call an agent's model asked for, heartbeating while it
runs, so cancelling the run stops the tool and a lost worker's call is tried again elsewhere."""

from __future__ import annotations

from temporalio import activity

from baton.agents.runtime import RUN_TOOL_ACTIVITY, ToolInvocation, ToolOutcome
from baton.agents.tools import ToolArgumentsInvalid, get_tool
from baton.telemetry.logs import log_fields

from .heartbeat import heartbeating


@activity.defn(name=RUN_TOOL_ACTIVITY)
async def run_tool(invocation: ToolInvocation) -> ToolOutcome:
    """Run the tool; arguments the model got wrong go back to it, tool failures are retried."""
    call = invocation.call
    tool = get_tool(call.name)
    if tool is None:
        return ToolOutcome(content=f"Error: tool {call.name!r} is not available on this worker.", error=True)
    try:
        with log_fields(agent=invocation.agent, tool=call.name):
            async with heartbeating():
                return ToolOutcome(content=await tool.call(call.arguments))
    except ToolArgumentsInvalid as e:
        return ToolOutcome(content=f"Error: {e}", error=True)

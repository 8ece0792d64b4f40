"""`AgentWorkflow`: one agent answering one input (`baton agent run`)."""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from baton.agents.access import authorize_agents
    from baton.agents.loop import run_agent
    from baton.agents.runtime import AGENT_WORKFLOW, AgentRunInput, AgentRunResult


# No `from __future__ import annotations`: see workflows/process.py.
@workflow.defn(name=AGENT_WORKFLOW)
class AgentWorkflow:
    @workflow.run
    async def run(self, input: AgentRunInput) -> AgentRunResult:
        workflow.set_current_details(f"agent {input.agent.name} on {input.agent.model}")
        await authorize_agents([input.agent])
        return await run_agent(input.agent, input.input, llm_queue=input.llm_queue)

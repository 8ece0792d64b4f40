"""`AgentWorkflow`: one agent answering one input (`baton agent run`)."""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from baton.agents.access import authorize_agents
    from baton.agents.loop import run_agent
    from baton.agents.runtime import AGENT_WORKFLOW, AgentRunInput, AgentRunResult


# Outside the sandbox, like ProcessWorkflow (see workflows/process.py): no user code runs here,
# tools and model calls are activities.
@workflow.defn(name=AGENT_WORKFLOW, sandboxed=False)
class AgentWorkflow:
    @workflow.run
    async def run(self, input: AgentRunInput) -> AgentRunResult:
        workflow.set_current_details(f"agent {input.agent.name} on {input.agent.model}")
        await authorize_agents([input.agent])
        return await run_agent(input.agent, input.input, llm_queue=input.llm_queue)

"""Workflows that only tests run: they drive the agent helpers the way a user's workflow would."""

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from baton.agents.loop import complete
    from baton.agents.spec import AgentSpec
    from baton.llm import ChatMessage


class ManyCallsInput(BaseModel):
    agent: AgentSpec
    calls: int
    context_bytes: int
    llm_queue: str


@workflow.defn
class ManyLargeCallsWorkflow:
    """`calls` LLM calls, each with its own context of `context_bytes` (a long document)."""

    @workflow.run
    async def run(self, input: ManyCallsInput) -> int:
        answered = 0
        for i in range(input.calls):
            header = f"Document {i}. "
            context = (
                header
                + ("All work and no play. " * (input.context_bytes // 22 + 1))[
                    : input.context_bytes - len(header)
                ]
            )
            response = await complete(
                input.agent,
                [ChatMessage(role="user", content=context)],
                llm_queue=input.llm_queue,
                summary=f"call {i}",
            )
            answered += len(response.message.content) > 0
        return answered

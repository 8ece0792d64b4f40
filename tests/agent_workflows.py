"""Workflows that only tests run: they drive the agent helpers the way a user's workflow would."""

import hashlib

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from baton.agents.loop import complete
    from baton.agents.spec import AgentSpec
    from baton.llm import ChatMessage


def document(number: int, size: int) -> str:
    """`size` characters of text that compresses like prose does (about 2:1), unique per number."""
    digests, seed = [], f"Document {number}.".encode()
    while len(digests) * 64 < size:
        seed = hashlib.sha256(seed).digest()
        digests.append(seed.hex())
    return f"Document {number}. " + "".join(digests)[:size]


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
            context = document(i, input.context_bytes)
            response = await complete(
                input.agent,
                [ChatMessage(role="user", content=context)],
                llm_queue=input.llm_queue,
                summary=f"call {i}",
            )
            answered += len(response.message.content) > 0
        return answered

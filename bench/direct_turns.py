"""The baseline of bench/orchestration_overhead.py: agent turns as plain activity calls.

A hand-written workflow that gives N turns to the agents in turn, each seeing the conversation
so far, by calling the LLM activity directly: what a round-robin group chat does, without
Baton's orchestration (transcript model, manager, progress query, summaries, timings).
"""

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from baton.agents.loop import complete
    from baton.agents.spec import AgentSpec
    from baton.llm import ChatMessage


class DirectTurnsInput(BaseModel):
    task: str
    agents: list[AgentSpec]
    turns: int
    llm_queue: str


@workflow.defn
class DirectTurns:
    @workflow.run
    async def run(self, input: DirectTurnsInput) -> int:
        said: list[tuple[str, str]] = []
        for turn in range(input.turns):
            agent = input.agents[turn % len(input.agents)]
            messages = [
                ChatMessage(role="system", content=agent.instructions),
                ChatMessage(role="user", content=input.task),
            ]
            messages += [
                ChatMessage(role="assistant", content=text)
                if who == agent.name
                else ChatMessage(role="user", content=f"{who}: {text}")
                for who, text in said[-40:]
            ]
            response = await complete(agent, messages, llm_queue=input.llm_queue, summary=f"turn {turn + 1}")
            said.append((agent.name, response.message.content))
        return len(said)

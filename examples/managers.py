"""A custom group chat manager: the developer answers every review before the next one."""

from __future__ import annotations

from baton.agents import AgentSpec
from baton.orchestration import RoundRobinManager, chat_manager
from baton.orchestration.chat import Chat


@chat_manager("developer-first")
class DeveloperFirst(RoundRobinManager):
    """Developer on odd rounds; the reviewers (everyone else) take turns on even rounds. Done when
    every reviewer has spoken twice."""

    async def select_next_speaker(self, chat: Chat, agents: list[AgentSpec]) -> str:
        developer, *reviewers = [a.name for a in agents]
        if chat.round % 2 == 1 or not reviewers:
            return developer
        return reviewers[(chat.round // 2 - 1) % len(reviewers)]

    async def should_terminate(self, chat: Chat, agents: list[AgentSpec]) -> str | None:
        reviewers = [a.name for a in agents[1:]]
        if reviewers and all(chat.spoken(name) >= 2 for name in reviewers):
            return "every reviewer reviewed twice"
        return None

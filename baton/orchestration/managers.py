"""Group chat managers: who speaks next, when the chat ends, when to ask a person, the answer.

Managers run in workflow code, so they must be deterministic; an LLM manager asks its agent
through an activity like any agent turn. Register your own with `@chat_manager("name")` in a
module of `BATON_MANAGER_MODULES` (workers import those), and start a chat with
`ManagerSpec(kind="custom", name="name")`:

    @chat_manager("qa-last")
    class QaLast(RoundRobinManager):
        async def select_next_speaker(self, chat: Chat, agents: list[AgentSpec]) -> str:
            ...
"""

from __future__ import annotations

import re
from collections.abc import Callable

from temporalio.exceptions import ApplicationError

from ..agents.spec import AgentSpec
from .chat import Chat, transcript_text
from .models import ManagerSpec


class GroupChatManager:
    """The decisions of a group chat. The defaults: round-robin, never ends early, never asks."""

    def __init__(self, spec: ManagerSpec) -> None:
        self.spec = spec

    async def select_next_speaker(self, chat: Chat, agents: list[AgentSpec]) -> str:
        """The name of the agent that speaks in this round."""
        return agents[(chat.round - 1) % len(agents)].name

    async def should_terminate(self, chat: Chat, agents: list[AgentSpec]) -> str | None:
        """Why the chat should end now, or None to go on."""
        return None

    async def should_request_user_input(self, chat: Chat, agents: list[AgentSpec]) -> str | None:
        """The question to ask a person now, or None."""
        every = self.spec.ask_human_every
        if every and chat.round % every == 0:
            return f"Round {chat.round}: anything to add or correct before the team goes on?"
        return None

    async def filter_results(self, chat: Chat, agents: list[AgentSpec]) -> str:
        """The chat's final answer; by default the last agent message."""
        return chat.last_answer()


class RoundRobinManager(GroupChatManager):
    """Agents speak in the order given."""


class LlmManager(GroupChatManager):
    """An LLM agent (the seed's Project Manager) picks each speaker and decides when work is done."""

    @property
    def agent(self) -> AgentSpec:
        assert self.spec.agent is not None, "validated by ManagerSpec"
        return self.spec.agent

    async def select_next_speaker(self, chat: Chat, agents: list[AgentSpec]) -> str:
        names = [a.name for a in agents]
        roster = "\n".join(f"- {a.name}: {a.description}" for a in agents)
        prompt = (
            f"Task: {chat.task}\nTeam:\n{roster}\nConversation so far:\n{transcript_text(chat) or '(none yet)'}\n\n"
            f"Who should speak next? Choose one of: {', '.join(names)}. Answer with the name only."
        )
        answer = (await chat.turn(self.agent, conversation=prompt, record=False)).answer
        return _named(answer, names) or await super().select_next_speaker(chat, agents)

    async def should_terminate(self, chat: Chat, agents: list[AgentSpec]) -> str | None:
        prompt = (
            f"Task: {chat.task}\nParticipants: {', '.join(a.name for a in agents)}\n"
            f"Conversation so far:\n{transcript_text(chat)}\n\n"
            "Has the team finished the task? Answer yes or no."
        )
        answer = (await chat.turn(self.agent, conversation=prompt, record=False)).answer
        return f"{self.agent.name} decided the task is done" if _yes(answer) else None


def _named(answer: str, names: list[str]) -> str | None:
    """The first agent name the answer mentions."""
    found = [(m.start(), name) for name in names if (m := re.search(rf"\b{re.escape(name)}\b", answer))]
    return min(found)[1] if found else None


def _yes(answer: str) -> bool:
    return re.search(r"\byes\b", answer, re.IGNORECASE) is not None and not re.search(
        r"\bno\b", answer, re.IGNORECASE
    )


_registry: dict[str, type[GroupChatManager]] = {}
_built_in: dict[str, type[GroupChatManager]] = {"round-robin": RoundRobinManager, "llm": LlmManager}

M = type[GroupChatManager]


def chat_manager(name: str) -> Callable[[M], M]:
    """Register a `GroupChatManager` subclass under `name`, for `ManagerSpec(kind="custom", name=...)`."""

    def register(cls: M) -> M:
        if not (isinstance(cls, type) and issubclass(cls, GroupChatManager)):
            raise TypeError(f"@chat_manager({name!r}) needs a GroupChatManager subclass")
        _registry[name] = cls
        return cls

    return register


def manager_for(spec: ManagerSpec) -> GroupChatManager:
    """The manager a chat runs with; a custom one must be registered on this worker."""
    if spec.kind != "custom":
        return _built_in[spec.kind](spec)
    assert spec.name is not None, "validated by ManagerSpec"
    cls = _registry.get(spec.name)
    if cls is None:
        known = ", ".join(sorted(_registry)) or "none"
        raise ApplicationError(
            f"no chat manager registered as {spec.name!r} on this worker (registered: {known}); "
            "add its module to BATON_MANAGER_MODULES",
            type="ManagerNotRegistered",
            non_retryable=True,
        )
    return cls(spec)

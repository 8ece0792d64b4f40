"""Inputs, results and progress of the orchestration patterns, as pydantic models.

Every pattern takes a task, agents and options, and returns an `OrchestrationResult`: the final
answer, the whole transcript, token usage and per-agent timings. While it runs, the `progress`
query shows the transcript as it grows.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator
from temporalio.exceptions import ApplicationError

from ..agents.spec import AgentSpec
from ..llm.messages import Usage

Pattern = Literal["sequential", "concurrent", "group-chat", "handoff", "magentic"]
Status = Literal["running", "waiting_for_input", "completed", "failed", "cancelled"]


class ChatTurn(BaseModel):
    """One message of the transcript: an agent's answer, the task, a person's reply, a note."""

    round: int
    speaker: str = Field(description="An agent's name, 'user' (task, a person's reply) or 'manager'.")
    content: str
    usage: Usage = Field(default_factory=Usage)
    duration_ms: float = 0.0


class AgentTiming(BaseModel):
    turns: int = 0
    total_ms: float = 0.0
    usage: Usage = Field(default_factory=Usage)


class HumanInput(BaseModel):
    """How long a run waits for a person, and what it does when nobody answers."""

    timeout_seconds: float = Field(7 * 24 * 3600, gt=0, description="Default: a week.")
    on_timeout: Literal["continue", "fail"] = "continue"


class HumanReply(BaseModel):
    """A person's answer, delivered with the `reply` update."""

    text: str = Field(min_length=1, max_length=100_000)
    author: str = Field("user", max_length=100, description="Who answered (a role or a pseudonym, not PII).")


class OrchestrationInput(BaseModel):
    task: str = Field(min_length=1)
    agents: list[AgentSpec] = Field(min_length=1)
    llm_queue: str = "baton-llm"
    max_context_turns: int = Field(
        40, ge=1, description="Latest transcript turns an agent sees (the task is always shown)."
    )
    continue_as_new_after: int | None = Field(
        None, ge=1, description="Continue as new after this many rounds, besides when Temporal suggests it."
    )

    @model_validator(mode="after")
    def _unique_agent_names(self) -> OrchestrationInput:
        names = [a.name for a in self.agents]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"agent names must be unique; repeated: {', '.join(duplicates)}")
        return self

    def all_agents(self) -> list[AgentSpec]:
        """Every agent the run may use: its agents, and its aggregator or manager."""
        return list(self.agents)

    def agent(self, name: str) -> AgentSpec:
        """The agent called `name`; a clear, final failure for a name not in the run."""
        found = next((a for a in self.agents if a.name == name), None)
        if found is None:
            known = ", ".join(a.name for a in self.agents)
            raise ApplicationError(
                f"no agent {name!r} in this run ({known})", type="UnknownAgent", non_retryable=True
            )
        return found


class SequentialInput(OrchestrationInput):
    """Agents in order; each gets the previous answer, or with `pass_transcript` all of them."""

    pass_transcript: bool = False


class ConcurrentInput(OrchestrationInput):
    """All agents on the task at once, then aggregation by an agent, or all answers listed."""

    aggregator: AgentSpec | None = None
    on_failure: Literal["fail", "continue"] = Field(
        "fail", description="continue: aggregate what succeeded (fails only when every agent failed)."
    )

    def all_agents(self) -> list[AgentSpec]:
        return [*self.agents, *([self.aggregator] if self.aggregator else [])]


class ManagerSpec(BaseModel):
    """Who runs a group chat: round-robin, an LLM agent that picks speakers, or a registered class."""

    kind: Literal["round-robin", "llm", "custom"] = "round-robin"
    agent: AgentSpec | None = Field(None, description="For kind llm: the manager agent (ProjectManager).")
    name: str | None = Field(None, description="For kind custom: a class registered with @chat_manager.")
    ask_human_every: int | None = Field(
        None, ge=1, description="Ask a person for input after every N rounds (round-robin and llm)."
    )

    @model_validator(mode="after")
    def _complete(self) -> ManagerSpec:
        if self.kind == "llm" and self.agent is None:
            raise ValueError("an llm manager needs its agent")
        if self.kind == "custom" and not self.name:
            raise ValueError("a custom manager needs the name it was registered under")
        return self


class GroupChatInput(OrchestrationInput):
    manager: ManagerSpec = Field(default_factory=ManagerSpec)
    max_rounds: int = Field(10, ge=1, le=100_000)
    approval_phrase: str | None = Field(
        "APPROVED", description="A message containing it ends the chat; None turns this off."
    )
    human: HumanInput = Field(default_factory=HumanInput)
    carried: CarriedChat | None = None

    def all_agents(self) -> list[AgentSpec]:
        return [*self.agents, *([self.manager.agent] if self.manager.agent else [])]


class HandoffInput(OrchestrationInput):
    """Agents pass control along `routes` ({agent: [agents it may hand off to]}) until one
    calls `complete_task`."""

    routes: dict[str, list[str]]
    start: str | None = Field(None, description="The first agent; default: the first of `agents`.")
    max_handoffs: int = Field(10, ge=1)
    max_rounds: int = Field(50, ge=1, description="Agent turns in all, questions to a person included.")
    human: HumanInput = Field(default_factory=HumanInput)

    @model_validator(mode="after")
    def _routes_name_agents(self) -> HandoffInput:
        names = {a.name for a in self.agents}
        unknown = sorted(
            {n for source, targets in self.routes.items() for n in [source, *targets]} - names
            | ({self.start} - names if self.start else set())
        )
        if unknown:
            raise ValueError(f"routes name agents that are not in the run: {', '.join(unknown)}")
        return self


class MagenticInput(OrchestrationInput):
    """A planning manager keeps a task ledger and a progress ledger and picks who works next."""

    manager: AgentSpec
    max_rounds: int = Field(20, ge=1)
    max_stalls: int = Field(3, ge=1, description="Rounds without progress before the plan is redone.")
    max_resets: int = Field(2, ge=0, description="Re-plans before the run gives up.")

    def all_agents(self) -> list[AgentSpec]:
        return [*self.agents, self.manager]


class CarriedChat(BaseModel):
    """What a long group chat carries into its continued run (the transcript travels out of band)."""

    transcript: list[ChatTurn]
    timings: dict[str, AgentTiming]
    round: int


class OrchestrationResult(BaseModel):
    pattern: Pattern
    answer: str
    transcript: list[ChatTurn]
    usage: Usage = Field(default_factory=Usage)
    timings: dict[str, AgentTiming] = Field(default_factory=dict)
    rounds: int = 0
    termination: str = Field("", description="Why the run ended.")
    failures: dict[str, str] = Field(default_factory=dict, description="Agents that failed, when tolerated.")


class OrchestrationProgress(BaseModel):
    pattern: Pattern
    status: Status
    round: int
    transcript: list[ChatTurn]
    waiting_for: str | None = Field(None, description="The question a person is asked, while waiting.")


GroupChatInput.model_rebuild()

"""The HTTP API's request and response models, in one copy: what the API validates and
answers (and publishes in its OpenAPI document), and what `BatonHttpClient` sends and parses.
They build on the models of the Python API (`ProcessState`, `AgentRunResult`,
`OrchestrationProgress`, ...), which travel unchanged."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

from baton.agents import AgentRunResult
from baton.compliance import Processing
from baton.orchestration.models import HumanInput, OrchestrationProgress, OrchestrationResult
from baton.persistence.definitions import DeployedDefinition
from baton.persistence.subjects import normalise_subject
from baton.process import ProcessDefinition, ProcessResult

MAX_VERSION = 2_147_483_647


def _identifier(subject: str) -> str:
    normalise_subject(subject)  # refused here (422) if nothing is left of it once normalised
    return subject


DataSubject = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        description="A data subject's identifier (never echoed, never in a URL).",
    ),
    AfterValidator(_identifier),
]


class RunInfo(BaseModel):
    """A run that was started: where to follow it."""

    run_id: str
    ui_url: str = Field(description="The run in the Temporal UI.")


class RunStarted(RunInfo):
    result: ProcessResult | None = Field(None, description="With `?wait=true`: what the run returned.")


class RunRequest(BaseModel):
    template: str = Field(min_length=1, max_length=100, description="A deployed process template.")
    version: int | None = Field(None, ge=1, le=MAX_VERSION, description="Default: the latest.")
    event: str = Field(min_length=1, max_length=200, description="The input event that starts it.")
    data: Any = None
    key: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9._-]{1,100}$",
        description="Run key: the workflow ID is `process-<name>-<key>` (no personal data), and a "
        "repeated start with the same key returns the run it started.",
    )
    data_subject: DataSubject | None = Field(
        None, description="Whose personal data the run holds (erasable)."
    )
    processing: Processing | None = Field(None, description="Why; default: the template's own.")


RunStatus = Literal["running", "completed", "failed", "canceled", "terminated", "timed_out"]


class ListedRun(BaseModel):
    run_id: str
    process: str | None = Field(description="The process's name (the `BatonProcess` search attribute).")
    status: str
    started_at: datetime | None
    closed_at: datetime | None = None


class RunPage(BaseModel):
    runs: list[ListedRun]
    next_page_token: str | None = Field(None, description="Pass it as `page_token` for the next page.")


class EventRequest(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    data: Any = None


class AgentSummary(BaseModel):
    name: str
    description: str
    model: str
    tools: list[str]
    roles: list[str] = Field(description="Roles that may use it; empty: anyone with AgentAccess.")


class AgentRunRequest(BaseModel):
    input: str = Field(min_length=1, max_length=100_000, description="What the agent is asked.")
    data_subject: DataSubject | None = Field(
        None, description="Whose personal data the run holds (erasable)."
    )
    processing: Processing | None = Field(None, description="Why; default: the agent's own.")


class AgentRunStarted(RunInfo):
    result: AgentRunResult | None = Field(None, description="With `?wait=true`: the answer.")


NamedAgent = Annotated[str, Field(min_length=1, max_length=64)]


class _Start(BaseModel):
    task: str = Field(min_length=1, max_length=100_000)
    agents: list[NamedAgent] = Field(min_length=1, max_length=50, description="Agents by name, in order.")
    data_subject: DataSubject | None = Field(
        None, description="Whose personal data the run holds (erasable)."
    )
    processing: Processing | None = Field(None, description="Why; needed with a data subject.")


class SequentialStart(_Start):
    pattern: Literal["sequential"]
    pass_transcript: bool = Field(False, description="Each agent sees every answer so far, not the last.")


class ConcurrentStart(_Start):
    pattern: Literal["concurrent"]
    aggregator: NamedAgent | None = Field(None, description="An agent that combines the answers.")
    on_failure: Literal["fail", "continue"] = "fail"


class GroupChatStart(_Start):
    pattern: Literal["group-chat"]
    manager: Literal["round-robin", "llm", "custom"] = "round-robin"
    manager_agent: NamedAgent = Field(
        "ProjectManager", description="For an llm manager: the agent that picks."
    )
    manager_name: str | None = Field(None, description="For a custom manager: its registered name.")
    ask_human_every: int | None = Field(None, ge=1)
    max_rounds: int = Field(10, ge=1, le=100_000)
    approval_phrase: str | None = "APPROVED"
    human: HumanInput = Field(default_factory=HumanInput)


class HandoffStart(_Start):
    pattern: Literal["handoff"]
    routes: dict[NamedAgent, list[NamedAgent]] | None = Field(None, description="Default: anyone to anyone.")
    max_handoffs: int = Field(10, ge=1)
    human: HumanInput = Field(default_factory=HumanInput)


class MagenticStart(_Start):
    pattern: Literal["magentic"]
    manager: NamedAgent = "ProjectManager"
    max_rounds: int = Field(20, ge=1)


OrchestrationStart = Annotated[
    SequentialStart | ConcurrentStart | GroupChatStart | HandoffStart | MagenticStart,
    Field(discriminator="pattern"),
]


class Orchestration(BaseModel):
    run_id: str
    progress: OrchestrationProgress
    result: OrchestrationResult | None = Field(None, description="Once it has completed.")


class Reply(BaseModel):
    text: str = Field(min_length=1, max_length=100_000)
    author: str = Field("user", max_length=100, description="Who answers (a role or a pseudonym, not PII).")


class TemplateVersion(BaseModel):
    name: str
    version: int
    created_at: datetime
    retired_at: datetime | None = Field(None, description="Retired: new runs no longer take it.")

    @classmethod
    def of(cls, deployed: DeployedDefinition) -> TemplateVersion:
        return cls(
            name=deployed.name,
            version=deployed.version,
            created_at=deployed.created_at,
            retired_at=deployed.retired_at,
        )


class Template(TemplateVersion):
    definition: ProcessDefinition
    mermaid: str = Field(description="The process as a Mermaid flowchart.")

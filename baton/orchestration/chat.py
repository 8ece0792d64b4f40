"""The transcript every orchestration keeps, and agent turns taken against it (workflow code)."""

from __future__ import annotations

from collections.abc import Sequence

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

from ..agents.loop import run_agent
from ..agents.runtime import AgentRunResult
from ..agents.spec import AgentSpec
from ..llm.messages import ChatMessage, ToolSpec, Usage
from .models import AgentTiming, CarriedChat, ChatTurn, OrchestrationResult, Pattern


class Chat:
    """The task, the transcript so far, and per-agent timings, with the round being played."""

    def __init__(self, task: str, llm_queue: str, window: int, carried: CarriedChat | None = None) -> None:
        self.task = task
        self.llm_queue = llm_queue
        self.window = window
        self.transcript: list[ChatTurn] = (
            carried.transcript if carried else [ChatTurn(round=0, speaker="user", content=task)]
        )
        self.timings: dict[str, AgentTiming] = carried.timings if carried else {}
        self.round = carried.round if carried else 0

    def add(self, speaker: str, content: str) -> ChatTurn:
        turn = ChatTurn(round=self.round, speaker=speaker, content=content)
        self.transcript.append(turn)
        return turn

    def messages_for(self, agent: AgentSpec, instruction: str | None = None) -> list[ChatMessage]:
        """The conversation as `agent` sees it: its own turns as its answers, others' as named input."""
        recent = self.transcript[1:][-self.window :]
        messages = [ChatMessage(role="user", content=self.task)]
        for turn in recent:
            if turn.speaker == agent.name:
                messages.append(ChatMessage(role="assistant", content=turn.content))
            else:
                messages.append(ChatMessage(role="user", content=f"{turn.speaker}: {turn.content}"))
        if instruction:
            messages.append(ChatMessage(role="user", content=instruction))
        return messages

    async def turn(
        self,
        agent: AgentSpec,
        *,
        instruction: str | None = None,
        conversation: str | list[ChatMessage] | None = None,
        control_tools: Sequence[ToolSpec] = (),
        record: bool = True,
    ) -> AgentRunResult:
        """`agent` takes its turn (LLM and tool calls as activities); its answer joins the transcript.

        A failure after the agent's retries, or an agent out of turns, ends the run with
        `AgentFailed`, naming agent and round.
        """
        started = workflow.now()
        workflow.set_current_details(f"round {self.round}: {agent.name} is working")
        try:
            result = await run_agent(
                agent,
                conversation if conversation is not None else self.messages_for(agent, instruction),
                llm_queue=self.llm_queue,
                label=f"round {self.round}",
                control_tools=control_tools,
            )
        except (ActivityError, ApplicationError) as e:
            # An LLM call that failed after its retries, or the agent out of turns (AgentTurnLimit).
            if is_cancelled_exception(e):  # the run is being cancelled, not failing
                raise
            why = e.message if isinstance(e, ApplicationError) else e.cause or e
            raise ApplicationError(
                f"agent {agent.name} failed in round {self.round}: {why}",
                type="AgentFailed",
                non_retryable=True,
            ) from e
        duration = (workflow.now() - started).total_seconds() * 1000
        timing = self.timings.setdefault(agent.name, AgentTiming())
        timing.turns += 1
        timing.total_ms += duration
        timing.usage = timing.usage + result.usage
        # A turn that only called a control tool (a handoff) said nothing: the manager's note tells it.
        if record and (result.answer or result.control is None):
            self.transcript.append(
                ChatTurn(
                    round=self.round,
                    speaker=agent.name,
                    content=result.answer,
                    usage=result.usage,
                    duration_ms=duration,
                )
            )
        return result

    def spoken(self, name: str) -> int:
        return sum(1 for t in self.transcript if t.speaker == name)

    def last_answer(self) -> str:
        return next(
            (t.content for t in reversed(self.transcript) if t.speaker not in ("user", "manager")), ""
        )

    def carried(self) -> CarriedChat:
        return CarriedChat(transcript=self.transcript, timings=self.timings, round=self.round)

    def result(
        self, pattern: Pattern, answer: str, termination: str, failures: dict[str, str] | None = None
    ) -> OrchestrationResult:
        usage = Usage()
        for timing in self.timings.values():
            usage = usage + timing.usage
        return OrchestrationResult(
            pattern=pattern,
            answer=answer,
            transcript=self.transcript,
            usage=usage,
            timings=self.timings,
            rounds=self.round,
            termination=termination,
            failures=failures or {},
        )


def transcript_text(chat: Chat, limit: int = 300) -> str:
    """The transcript as lines `- Speaker: text`, for managers' prompts."""
    return "\n".join(f"- {t.speaker}: {t.content[:limit]}" for t in chat.transcript[1:][-chat.window :])

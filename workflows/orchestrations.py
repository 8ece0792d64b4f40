"""The orchestration patterns as workflows: sequential, concurrent, group chat, handoff, magentic.

Each keeps a transcript (`baton.orchestration.chat.Chat`) that the `progress` query shows while
the run goes on; each agent turn is the agent loop, so every LLM and tool call is an activity
whose summary names the round and the agent. A person's input arrives by the `reply` update.
"""

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from pydantic import BaseModel, ValidationError
from temporalio import workflow
from temporalio.exceptions import ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from baton.agents.access import authorize_agents
    from baton.agents.spec import AgentSpec
    from baton.llm.messages import ToolSpec
    from baton.orchestration.chat import Chat, transcript_text
    from baton.orchestration.managers import manager_for
    from baton.orchestration.models import (
        CarriedChat,
        ConcurrentInput,
        GroupChatInput,
        HandoffInput,
        HumanInput,
        HumanReply,
        MagenticInput,
        OrchestrationInput,
        OrchestrationProgress,
        OrchestrationResult,
        Pattern,
        SequentialInput,
        Status,
    )
    from baton.telemetry.metrics import ORCHESTRATION_ROUNDS


# No `from __future__ import annotations`: see workflows/process.py.
class _Orchestration:
    """What every pattern shares: the progress query and a person's reply."""

    pattern: Pattern

    def __init__(self) -> None:
        self._chat: Chat | None = None
        self._first_round = 0
        self._status: Status = "running"
        self._question: str | None = None
        self._reply: HumanReply | None = None

    @workflow.query
    def progress(self) -> OrchestrationProgress:
        """The transcript so far, the round, and the question a person is asked, if any."""
        chat = self._chat
        return OrchestrationProgress(
            pattern=self.pattern,
            status=self._status,
            round=chat.round if chat else 0,
            transcript=chat.transcript if chat else [],
            waiting_for=self._question,
        )

    @workflow.update
    async def reply(self, reply: HumanReply) -> None:
        """A person's answer to the question the run waits on."""
        self._reply = reply

    @reply.validator
    def _only_when_asked(self, reply: HumanReply) -> None:
        if self._question is None:
            raise ValueError("the run is not waiting for input")

    async def ask_human(self, chat: Chat, question: str, human: HumanInput) -> str | None:
        """Wait, durably, for a person's reply; None when nobody answers in time and that is allowed."""
        self._question, self._reply, self._status = question, None, "waiting_for_input"
        chat.add("manager", f"Asked a person: {question}")
        workflow.set_current_details(f"round {chat.round}: waiting for a person: {question}")
        try:
            await workflow.wait_condition(
                lambda: self._reply is not None, timeout=timedelta(seconds=human.timeout_seconds)
            )
        except TimeoutError:
            if human.on_timeout == "fail":
                raise ApplicationError(
                    f"nobody answered within {human.timeout_seconds:.0f} s: {question}",
                    type="HumanInputTimeout",
                ) from None
            chat.add("manager", "No answer from a person in time; the team goes on.")
            return None
        finally:
            self._question, self._status = None, "running"
        assert self._reply is not None
        chat.add(self._reply.author, self._reply.text)
        return self._reply.text

    async def _start(self, input: OrchestrationInput, carried: CarriedChat | None = None) -> Chat:
        """The run's transcript, new or carried over from before continue-as-new, once the run's
        principal is known to be allowed its agents."""
        await authorize_agents(input.all_agents())
        self._chat = Chat(input.task, input.llm_queue, input.max_context_turns, carried)
        self._first_round = self._chat.round
        return self._chat

    @contextmanager
    def _reporting(self) -> Iterator[None]:
        """Keep the status that `progress` shows true to how the run ends: failed or cancelled
        (a query on a closed run replays it, and sees the status set here)."""
        try:
            yield
        except workflow.ContinueAsNewError:
            raise
        except BaseException as e:
            self._status = "cancelled" if is_cancelled_exception(e) else "failed"
            raise
        finally:  # the rounds this run made, counted once (not when it replays)
            if self._chat is not None and not workflow.unsafe.is_replaying():
                ORCHESTRATION_ROUNDS.labels(self.pattern).inc(self._chat.round - self._first_round)


@workflow.defn(name="SequentialOrchestration")
class SequentialOrchestration(_Orchestration):
    pattern: Pattern = "sequential"

    @workflow.run
    async def run(self, input: SequentialInput) -> OrchestrationResult:
        with self._reporting():
            chat = await self._start(input)
            previous = input.task
            for agent in input.agents:
                chat.round += 1
                conversation = chat.messages_for(agent) if input.pass_transcript else previous
                previous = (await chat.turn(agent, conversation=conversation)).answer
            self._status = "completed"
            return chat.result(self.pattern, previous, f"all {len(input.agents)} agents answered")


@workflow.defn(name="ConcurrentOrchestration")
class ConcurrentOrchestration(_Orchestration):
    pattern: Pattern = "concurrent"

    @workflow.run
    async def run(self, input: ConcurrentInput) -> OrchestrationResult:
        with self._reporting():
            chat = await self._start(input)
            chat.round = 1
            outcomes = await asyncio.gather(
                *(chat.turn(agent, conversation=input.task) for agent in input.agents), return_exceptions=True
            )
            failures = {
                a.name: str(o)
                for a, o in zip(input.agents, outcomes, strict=True)
                if isinstance(o, BaseException)
            }
            if failures and (input.on_failure == "fail" or len(failures) == len(input.agents)):
                first = next(o for o in outcomes if isinstance(o, BaseException))
                raise first
            answers = {
                a.name: o.answer
                for a, o in zip(input.agents, outcomes, strict=True)
                if not isinstance(o, BaseException)
            }
            if input.aggregator is None:
                answer = "\n\n".join(f"## {name}\n{text}" for name, text in answers.items())
            else:
                chat.round = 2
                listing = "\n\n".join(f"{name}:\n{text}" for name, text in answers.items())
                prompt = f"Task: {input.task}\n\nCombine these answers into one:\n\n{listing}"
                answer = (await chat.turn(input.aggregator, conversation=prompt)).answer
            self._status = "completed"
            return chat.result(
                self.pattern, answer, f"{len(answers)} of {len(input.agents)} agents answered", failures
            )


@workflow.defn(name="GroupChatOrchestration")
class GroupChatOrchestration(_Orchestration):
    pattern: Pattern = "group-chat"

    @workflow.run
    async def run(self, input: GroupChatInput) -> OrchestrationResult:
        with self._reporting():
            chat = await self._start(input, input.carried)
            manager = manager_for(input.manager)
            started_at = chat.round
            while True:
                if chat.round >= input.max_rounds:
                    termination = f"reached max_rounds ({input.max_rounds})"
                    break
                chat.round += 1
                speaker = input.agent(await manager.select_next_speaker(chat, input.agents))
                message = (await chat.turn(speaker)).answer
                if input.approval_phrase and input.approval_phrase in message:
                    termination = f"{speaker.name} said {input.approval_phrase}"
                    break
                if reason := await manager.should_terminate(chat, input.agents):
                    termination = reason
                    break
                if question := await manager.should_request_user_input(chat, input.agents):
                    await self.ask_human(chat, question, input.human)
                if workflow.info().is_continue_as_new_suggested() or (
                    input.continue_as_new_after and chat.round - started_at >= input.continue_as_new_after
                ):
                    # The transcript travels into the next run as its input, stored out of band.
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    workflow.continue_as_new(input.model_copy(update={"carried": chat.carried()}))
            answer = await manager.filter_results(chat, input.agents)
            self._status = "completed"
            return chat.result(self.pattern, answer, termination)


COMPLETE_TASK = ToolSpec(
    name="complete_task",
    description="Finish the task: give the final answer for the user.",
    parameters={"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]},
)
REQUEST_USER_INPUT = ToolSpec(
    name="request_user_input",
    description="Ask the user a question and wait for the reply.",
    parameters={"type": "object", "properties": {"question": {"type": "string"}}, "required": ["question"]},
)


def _transfer_tool(target: AgentSpec) -> ToolSpec:
    return ToolSpec(
        name=f"transfer_to_{target.name}",
        description=f"Hand the conversation to {target.name}: {target.description}",
    )


@workflow.defn(name="HandoffOrchestration")
class HandoffOrchestration(_Orchestration):
    pattern: Pattern = "handoff"

    @workflow.run
    async def run(self, input: HandoffInput) -> OrchestrationResult:
        with self._reporting():
            chat = await self._start(input)
            current = input.agent(input.start or input.agents[0].name)
            handoffs = 0
            while True:
                if chat.round >= input.max_rounds:
                    raise ApplicationError(
                        f"the task was not completed within {input.max_rounds} rounds",
                        type="HandoffRoundLimit",
                    )
                chat.round += 1
                targets = [input.agent(n) for n in input.routes.get(current.name, [])]
                tools = [*(_transfer_tool(t) for t in targets), COMPLETE_TASK, REQUEST_USER_INPUT]
                result = await chat.turn(current, control_tools=tools)
                call = result.control
                if call is None:  # answered without calling a control tool: that answer is final
                    self._status = "completed"
                    return chat.result(self.pattern, result.answer, f"{current.name} answered")
                arguments = _arguments(call.arguments)
                if call.name == COMPLETE_TASK.name:
                    self._status = "completed"
                    answer = str(arguments.get("answer") or result.answer)
                    chat.add(current.name, answer)
                    return chat.result(self.pattern, answer, f"{current.name} completed the task")
                if call.name == REQUEST_USER_INPUT.name:
                    await self.ask_human(
                        chat, str(arguments.get("question") or "Can you tell me more?"), input.human
                    )
                    continue
                handoffs += 1
                if handoffs > input.max_handoffs:
                    raise ApplicationError(
                        f"more than {input.max_handoffs} handoffs without completing the task",
                        type="TooManyHandoffs",
                    )
                target = call.name.removeprefix("transfer_to_")
                chat.add("manager", f"{current.name} handed off to {target}")
                current = input.agent(target)


def _arguments(text: str) -> dict:
    try:
        value = json.loads(text or "{}")
    except (ValueError, RecursionError):  # a model's answer nested too deeply must not stall the run
        return {}
    return value if isinstance(value, dict) else {}


class ProgressLedger(BaseModel):
    """What the magentic manager answers every round."""

    is_request_satisfied: bool
    is_in_loop: bool = False
    is_progress_being_made: bool = True
    next_speaker: str
    instruction: str


@workflow.defn(name="MagenticOrchestration")
class MagenticOrchestration(_Orchestration):
    pattern: Pattern = "magentic"

    @workflow.run
    async def run(self, input: MagenticInput) -> OrchestrationResult:
        with self._reporting():
            chat = await self._start(input)
            names = [a.name for a in input.agents]
            await self._plan(chat, input, "Make a plan")
            stalls = resets = 0
            while chat.round < input.max_rounds:
                chat.round += 1
                ledger = await self._progress(chat, input, names)
                if ledger is not None and ledger.is_request_satisfied:
                    answer = await self._final_answer(chat, input)
                    self._status = "completed"
                    return chat.result(
                        self.pattern, answer, f"{input.manager.name} found the request satisfied"
                    )
                if ledger is None or ledger.is_in_loop or not ledger.is_progress_being_made:
                    stalls += 1
                    if stalls > input.max_stalls:
                        resets += 1
                        if resets > input.max_resets:
                            raise ApplicationError(
                                f"no progress after {input.max_resets} re-plans (max_resets)",
                                type="MagenticStalled",
                            )
                        stalls = 0
                        await self._plan(chat, input, "The team is stuck. Make a new plan")
                        continue
                if ledger is None:
                    continue
                await chat.turn(
                    input.agent(ledger.next_speaker),
                    instruction=f"{input.manager.name}: {ledger.instruction}",
                )
            raise ApplicationError(
                f"the request was not satisfied within {input.max_rounds} rounds", type="MagenticRoundLimit"
            )

    async def _plan(self, chat: Chat, input: MagenticInput, ask: str) -> None:
        roster = "\n".join(f"- {a.name}: {a.description}" for a in input.agents)
        prompt = (
            f"TASK LEDGER\nTask: {chat.task}\nTeam:\n{roster}\nConversation so far:\n{transcript_text(chat) or '(none)'}\n\n"
            f"{ask}: list the known facts, what must be found out, and the steps, naming who does each."
        )
        plan = (await chat.turn(input.manager, conversation=prompt, record=False)).answer
        chat.add("manager", f"Plan:\n{plan}")

    async def _progress(self, chat: Chat, input: MagenticInput, names: list[str]) -> ProgressLedger | None:
        prompt = (
            f"PROGRESS LEDGER\nTask: {chat.task}\nParticipants: {', '.join(names)}\n"
            f"Conversation so far:\n{transcript_text(chat)}\n\n"
            'Answer with JSON only: {"is_request_satisfied": bool, "is_in_loop": bool, '
            '"is_progress_being_made": bool, "next_speaker": one of the participants, "instruction": str}'
        )
        answer = (await chat.turn(input.manager, conversation=prompt, record=False)).answer
        try:
            ledger = ProgressLedger.model_validate_json(_json_object(answer))
        except ValidationError:
            chat.add("manager", "The progress ledger could not be read; counted as a stall.")
            return None
        if ledger.next_speaker not in names and not ledger.is_request_satisfied:
            chat.add("manager", f"The ledger named {ledger.next_speaker!r}, who is not in the team.")
            return None
        return ledger

    async def _final_answer(self, chat: Chat, input: MagenticInput) -> str:
        prompt = f"Task: {chat.task}\nConversation:\n{transcript_text(chat, limit=2000)}\n\nGive the final answer to the task."
        return (await chat.turn(input.manager, conversation=prompt)).answer


def _json_object(text: str) -> str:
    """The outermost {...} of an answer that may wrap its JSON in prose or a code fence."""
    start, end = text.find("{"), text.rfind("}")
    return text[start : end + 1] if 0 <= start < end else text


ORCHESTRATIONS = [
    SequentialOrchestration,
    ConcurrentOrchestration,
    GroupChatOrchestration,
    HandoffOrchestration,
    MagenticOrchestration,
]

"""The orchestration patterns on the real dev server, with the local model and the OpenAI-protocol
test server: behaviour, termination, people in the loop, failures, cancellation, crashes, and a
chat long enough to continue as new."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import WorkflowEnvironment

from baton.agents import AgentSpec
from baton.orchestration import GroupChatInput, HumanInput, ManagerSpec
from baton.process.model import RetryOptions
from baton.settings import BatonSettings
from baton.starter.client import BatonClient
from baton.testing import ProcessEnvironment
from tests.conftest import baton_worker
from tests.llm_server import FakeLlmServer, Reply
from tests.test_cli import baton as baton_cli

TEAM = ["Developer", "QA", "BusinessAnalyst"]


@pytest.fixture
def server() -> Iterator[FakeLlmServer]:
    with FakeLlmServer() as s:
        yield s


@pytest.fixture
async def baton(
    temporal: WorkflowEnvironment, settings: BatonSettings, server: FakeLlmServer
) -> AsyncIterator[Any]:
    fast = settings.model_copy(update={"openai_base_url": server.url, "llm_timeout_seconds": 2.0})
    async with ProcessEnvironment(settings=fast, client=temporal.client) as env:
        yield env.client


def remote(name: str, **fields: Any) -> AgentSpec:
    """An agent on the OpenAI-protocol test server (which echoes unless scripted)."""
    return AgentSpec(
        name=name,
        instructions=f"You are {name}.",
        model="openai:gpt-test",
        retry=RetryOptions(initial_interval_seconds=0.1, max_attempts=2),
        **fields,
    )


def broken(name: str) -> AgentSpec:
    return AgentSpec(name=name, instructions="You are broken.", model="azure:not-configured")


def speakers(result: Any) -> list[str]:
    return [t.speaker for t in result.transcript]


async def test_sequential_passes_each_answer_to_the_next(baton: Any, server: FakeLlmServer) -> None:
    result = await baton.run_sequential("raw notes", [remote("Extract"), remote("Analyse"), remote("Report")])

    assert result.answer == "echo: echo: echo: raw notes"
    assert speakers(result) == ["user", "Extract", "Analyse", "Report"]
    assert set(result.timings) == {"Extract", "Analyse", "Report"}
    assert result.usage.output_tokens == sum(t.usage.output_tokens for t in result.transcript)


async def test_sequential_seed_example_with_the_local_model(baton: Any) -> None:
    result = await baton.run_sequential(
        "Q3 sales: 1,200 units, up 8%",
        ["DataExtraction", "Analysis", "ReportGeneration"],
        pass_transcript=True,
    )
    assert result.answer.startswith("[simulated by Baton's local model] Report writer")
    assert result.rounds == 3 and result.termination == "all 3 agents answered"


async def test_concurrent_runs_all_agents_and_aggregates(baton: Any) -> None:
    listed = await baton.run_concurrent(
        "EV chargers in Europe", ["MarketAnalysis", "CompetitorAnalysis", "TrendAnalysis"]
    )
    assert [
        f"## {n}" in listed.answer for n in ("MarketAnalysis", "CompetitorAnalysis", "TrendAnalysis")
    ] == [True] * 3
    assert "Using market_size" in listed.answer  # MarketAnalysis used its tool

    combined = await baton.run_concurrent(
        "EV chargers in Europe", ["MarketAnalysis", "TrendAnalysis"], aggregator="ReportGeneration"
    )
    assert speakers(combined)[-1] == "ReportGeneration" and combined.answer.startswith("[simulated")


async def test_concurrent_partial_failure_policy(baton: Any) -> None:
    tolerant = await baton.run_concurrent("task", ["Analysis", broken("Flaky")], on_failure="continue")
    assert "## Analysis" in tolerant.answer and set(tolerant.failures) == {"Flaky"}
    assert "agent Flaky failed in round 1" in tolerant.failures["Flaky"]

    with pytest.raises(WorkflowFailureError) as failure:
        await baton.run_concurrent("task", ["Analysis", broken("Flaky")])
    assert "agent Flaky failed in round 1" in str(failure.value.cause)


async def test_group_chat_round_robin_until_max_rounds(baton: Any) -> None:
    result = await baton.run_group_chat("Design a login page", TEAM, max_rounds=4)
    assert speakers(result) == ["user", "Developer", "QA", "BusinessAnalyst", "Developer"]
    assert result.termination == "reached max_rounds (4)"


async def test_group_chat_ends_on_the_approval_phrase(baton: Any, server: FakeLlmServer) -> None:
    server.then(Reply.text("Here is the design."), Reply.text("Looks right. APPROVED"))
    result = await baton.run_group_chat("Design", [remote("Dev"), remote("Reviewer")], max_rounds=10)
    assert result.rounds == 2 and result.termination == "Reviewer said APPROVED"
    assert result.answer == "Looks right. APPROVED"


async def test_group_chat_with_the_project_manager_choosing(baton: Any) -> None:
    result = await baton.run_group_chat("Plan OAuth login for the billing portal", TEAM, manager="llm")
    assert sorted(speakers(result)[1:]) == sorted(TEAM)  # the manager gave everyone a turn, then ended
    assert result.termination == "ProjectManager decided the task is done"
    assert result.timings["ProjectManager"].turns == 6  # a choice and a verdict per round


async def test_group_chat_with_a_custom_manager(baton: Any) -> None:
    result = await baton.run_group_chat(
        "Ship the export feature",
        TEAM,
        manager=ManagerSpec(kind="custom", name="developer-first"),
        max_rounds=20,
    )
    assert speakers(result)[1:] == ["Developer", "QA", "Developer", "BusinessAnalyst"] * 2
    assert result.termination == "every reviewer reviewed twice"


async def test_an_unregistered_manager_fails_the_run_clearly(baton: Any) -> None:
    with pytest.raises(WorkflowFailureError) as failure:
        await baton.run_group_chat("x", TEAM, manager=ManagerSpec(kind="custom", name="nobody"))
    assert "no chat manager registered as 'nobody'" in str(failure.value.cause)


async def test_a_failing_agent_ends_the_chat_with_a_clear_failure(baton: Any) -> None:
    with pytest.raises(WorkflowFailureError) as failure:
        await baton.run_group_chat("x", ["Developer", broken("Tester")], max_rounds=5)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "AgentFailed"
    assert (
        "agent Tester failed in round 2" in cause.message and "BATON_AZURE_OPENAI_ENDPOINT" in cause.message
    )


FAILING_RUNS = {
    "sequential": lambda baton: baton.run_sequential("x", ["Analysis", broken("Flaky")]),
    "concurrent": lambda baton: baton.run_concurrent("x", ["Analysis", broken("Flaky")]),
    "group-chat": lambda baton: baton.run_group_chat("x", ["Developer", broken("Flaky")], max_rounds=5),
    "handoff": lambda baton: baton.run_handoff("x", [broken("Flaky"), "Developer"]),
    "magentic": lambda baton: baton.run_magentic("x", ["MarketAnalysis"], manager=broken("Flaky")),
}


@pytest.mark.parametrize("pattern", FAILING_RUNS)
async def test_every_pattern_reports_its_failure_in_progress(baton: Any, pattern: str) -> None:
    run = await FAILING_RUNS[pattern](baton).start()
    with pytest.raises(WorkflowFailureError) as failure:
        await run.result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "AgentFailed"
    assert "agent Flaky failed in round" in cause.message
    progress = await run.progress()
    assert progress.pattern == pattern and progress.status == "failed"


async def test_an_agent_out_of_turns_fails_as_agent_failed(baton: Any, server: FakeLlmServer) -> None:
    # The model keeps calling tools: after max_turns LLM calls the agent gives up.
    server.then(Reply.call("lookup"), Reply.call("lookup"))
    run = await baton.run_sequential("x", [remote("Looper", max_turns=2)]).start()
    with pytest.raises(WorkflowFailureError) as failure:
        await run.result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "AgentFailed"
    assert "agent Looper failed in round 1" in cause.message and "max_turns" in cause.message
    assert (await run.progress()).status == "failed"


async def test_handoff_follows_routes_to_completion(baton: Any) -> None:
    triage = AgentSpec(
        name="Triage", instructions="You are a support triage agent.", description="routes requests"
    )
    refunds = AgentSpec(
        name="Refunds", instructions="You are a refunds specialist.", description="handles refunds"
    )
    result = await baton.run_handoff(
        "I want my money back for order 1042",
        [triage, refunds],
        routes={"Triage": ["Refunds"], "Refunds": []},
    )
    assert "Triage handed off to Refunds" in [t.content for t in result.transcript]
    assert result.termination == "Refunds completed the task"
    assert result.answer.startswith("[simulated by Baton's local model] Refunds specialist")


async def test_handoff_asks_a_person_and_goes_on_with_the_reply(baton: Any, server: FakeLlmServer) -> None:
    server.then(
        Reply.call("request_user_input", question="Which order?"),
        Reply.call("transfer_to_Billing"),
        Reply.call("complete_task", answer="Refunded order 1042"),
    )
    run = await baton.run_handoff("Refund please", [remote("Front"), remote("Billing")]).start()
    while (progress := await run.progress()).waiting_for is None:
        await asyncio.sleep(0.05)
    assert progress.status == "waiting_for_input" and progress.waiting_for == "Which order?"
    await run.reply("Order 1042")
    result = await run.result()

    assert result.answer == "Refunded order 1042"
    assert "user: Order 1042" in [m["content"] for m in server.calls()[1].body["messages"]]


async def test_handoff_outside_the_routes_is_never_offered(baton: Any, server: FakeLlmServer) -> None:
    server.then(Reply.call("transfer_to_B"), Reply.call("complete_task", answer="done by B"))
    result = await baton.run_handoff(
        "x", [remote("A"), remote("B"), remote("C")], routes={"A": ["B"], "B": []}
    )
    offered = [t["function"]["name"] for t in server.calls()[1].body["tools"]]
    assert offered == ["complete_task", "request_user_input"]
    assert result.answer == "done by B"


async def test_magentic_plans_tracks_progress_and_answers(baton: Any) -> None:
    result = await baton.run_magentic(
        "Assess the market for home batteries", ["MarketAnalysis", "TrendAnalysis"]
    )
    notes = [t.content for t in result.transcript if t.speaker == "manager"]
    assert notes[0].startswith("Plan:")
    assert speakers(result).count("MarketAnalysis") == 1 and speakers(result).count("TrendAnalysis") == 1
    assert speakers(result)[-1] == "ProjectManager" and result.termination.endswith(
        "found the request satisfied"
    )


async def test_magentic_replans_on_stalls_then_gives_up(baton: Any, server: FakeLlmServer) -> None:
    # The manager's progress ledger is never valid JSON: every round stalls.
    with pytest.raises(WorkflowFailureError) as failure:
        await baton.run_magentic("x", [remote("Worker")], manager=remote("Planner"), max_rounds=30)
    assert "no progress after 2 re-plans" in str(failure.value.cause)
    plans = [c for c in server.calls() if c.body["messages"][-1]["content"].startswith("TASK LEDGER")]
    assert len(plans) == 3  # the first plan and two re-plans


async def test_cancelling_a_chat_that_waits_for_a_person(baton: Any) -> None:
    run = await baton.run_group_chat("x", TEAM, manager=ManagerSpec(ask_human_every=1), max_rounds=5).start()
    while (await run.progress()).status != "waiting_for_input":
        await asyncio.sleep(0.05)
    await run.cancel()
    with pytest.raises(WorkflowFailureError) as failure:
        await run.result()
    assert isinstance(failure.value.cause, CancelledError)
    assert (await run.progress()).status == "cancelled"


async def test_a_reply_when_nobody_asked_is_refused(baton: Any, server: FakeLlmServer) -> None:
    server.then(Reply(content="thinking done", hang_seconds=1.0))
    run = await baton.run_group_chat("x", [remote("Slow")], max_rounds=1).start()
    while not server.calls():
        await asyncio.sleep(0.05)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await run.reply("hello?")
    assert "the run is not waiting for input" in str(refused.value.cause)
    assert (await run.result()).answer == "thinking done"


async def test_a_person_answers_days_later(settings: BatonSettings) -> None:
    async with ProcessEnvironment(settings=settings, time_skipping=True) as env:
        run = await env.client.run_group_chat(
            "Pick a launch date",
            TEAM,
            manager=ManagerSpec(ask_human_every=2),
            max_rounds=3,
            human=HumanInput(timeout_seconds=7 * 24 * 3600),
        ).start()
        while (progress := await run.progress()).status != "waiting_for_input":
            await asyncio.sleep(0.05)
        assert progress.round == 2 and len(progress.transcript) == 4  # task, two turns, the question
        await env.sleep(3 * 24 * 3600)
        await run.reply("Go for the 14th", author="product-owner")
        result = await run.result()

        timed_out = await env.client.run_group_chat(
            "Pick a launch date",
            TEAM,
            manager=ManagerSpec(ask_human_every=1),
            max_rounds=2,
            human=HumanInput(timeout_seconds=3600),
        ).start()
        await env.sleep(2 * 3600)
        quiet = await timed_out.result()

    assert ("product-owner", "Go for the 14th") in [(t.speaker, t.content) for t in result.transcript]
    assert speakers(result)[-1] == "BusinessAnalyst" and result.rounds == 3
    assert "No answer from a person in time; the team goes on." in [t.content for t in quiet.transcript]


async def test_a_300_round_chat_continues_as_new_without_losing_the_transcript(
    temporal: WorkflowEnvironment, settings: BatonSettings
) -> None:
    # A low offload threshold, so that the carried transcript (compressed, then encrypted) is
    # stored out of band well before it would be in production.
    small = settings.model_copy(update={"payload_offload_bytes": 2048})
    pair = [
        AgentSpec(name="Ping", instructions="You are ping."),
        AgentSpec(name="Pong", instructions="You are pong."),
    ]
    async with ProcessEnvironment(settings=small, client=temporal.client) as env:
        baton = env.client
        run = await baton.orchestrate(
            GroupChatInput(
                task="rally", agents=pair, max_rounds=300, approval_phrase=None, continue_as_new_after=60
            )
        )
        result = await run.result()
        first = baton.temporal.get_workflow_handle(run.id, run_id=run.handle.first_execution_run_id)
        first_status = (await first.describe()).status
        last = await baton.temporal.get_workflow_handle(run.id).fetch_history()

    assert result.rounds == 300 and len(result.transcript) == 301
    assert speakers(result)[1:] == ["Ping", "Pong"] * 150
    assert [t.round for t in result.transcript[1:]] == list(range(1, 301))
    assert first_status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW
    carried = last.events[0].workflow_execution_started_event_attributes.input.payloads[0]
    assert carried.external_payloads, "the carried transcript travels out of band"


@pytest.fixture
async def cli_env(
    temporal: WorkflowEnvironment, settings: BatonSettings
) -> AsyncIterator[ProcessEnvironment]:
    async with ProcessEnvironment(settings=settings, client=temporal.client) as env:
        yield env


async def test_cli_group_chat_shows_turns_and_asks_the_person(cli_env: ProcessEnvironment, temporal) -> None:
    result = await baton_cli(
        cli_env.settings,
        "orchestrate",
        "group-chat",
        "--agents",
        "Developer,QA,BusinessAnalyst",
        "--task",
        "Plan the export feature",
        "--max-rounds",
        "3",
        "--ask-every",
        "2",
        stdin="Keep it small\n",
        BATON_TEMPORAL_ADDRESS=temporal.client.service_client.config.target_host,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for line in (
        "round 1 Developer:",
        "round 2 QA:",
        "round 2 user: Keep it small",
        "round 3 BusinessAnalyst:",
    ):
        assert line in out
    assert "Round 2: anything to add" in out and "3 round(s) · reached max_rounds (3)" in out
    assert "/namespaces/default/workflows/group-chat-" in out


async def test_cli_exits_non_zero_with_a_clear_message_when_the_run_fails(
    cli_env: ProcessEnvironment, temporal, tmp_path
) -> None:
    agents_dir = tmp_path / "agents"
    agents_dir.mkdir()
    (agents_dir / "broken.yaml").write_text(
        "name: Broken\ninstructions: You are broken.\nmodel: azure:nowhere\n"
    )
    address = temporal.client.service_client.config.target_host
    failed = await baton_cli(
        cli_env.settings,
        "orchestrate",
        "sequential",
        "--agents",
        "Broken",
        "--task",
        "x",
        BATON_TEMPORAL_ADDRESS=address,
        BATON_AGENT_DIRS=f'["{agents_dir}"]',
    )
    assert failed.returncode == 1
    assert "the run failed" in failed.stderr and "agent Broken failed in round 1" in failed.stderr

    unknown = await baton_cli(
        cli_env.settings,
        "orchestrate",
        "handoff",
        "--agents",
        "Nobody",
        "--task",
        "x",
        BATON_TEMPORAL_ADDRESS=address,
    )
    assert unknown.returncode == 2 and "no agent named 'Nobody'" in unknown.stderr


async def test_cancelling_a_chat_while_an_agent_works(baton: Any, server: FakeLlmServer) -> None:
    server.then(Reply.hang(30))
    run = await baton.run_concurrent("x", [remote("Slow", timeout_seconds=60)]).start()
    while not server.calls():
        await asyncio.sleep(0.05)
    await run.cancel()
    with pytest.raises(WorkflowFailureError) as failure:
        await run.result()
    assert isinstance(failure.value.cause, CancelledError)
    assert (await run.progress()).status == "cancelled"


async def test_a_worker_killed_mid_chat_resumes_with_the_transcript_intact(
    temporal: WorkflowEnvironment, baton_temporal: Any, settings: BatonSettings, server: FakeLlmServer
) -> None:
    server.then(Reply.text("one"), Reply.text("two"), Reply.hang(30), Reply.text("three"))
    address = temporal.client.service_client.config.target_host
    queues = [settings.workflows_queue, settings.llm_queue]
    worker = baton_worker(address, settings, queues, BATON_OPENAI_BASE_URL=server.url)
    fast = settings.model_copy(update={"openai_base_url": server.url})
    try:
        client = BatonClient(baton_temporal, fast)
        agents = [remote("A", timeout_seconds=2), remote("B", timeout_seconds=2)]
        run = await client.run_group_chat("count", agents, max_rounds=3).start()
        while len(server.calls()) < 3:  # the third call hangs: the worker dies under it
            await asyncio.sleep(0.05)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        worker.kill()

    async with ProcessEnvironment(settings=fast, client=temporal.client):
        result = await run.result()
    assert [t.content for t in result.transcript] == ["count", "one", "two", "three"]
    assert len(server.calls()) == 4  # only the call cut off was made again

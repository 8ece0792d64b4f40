"""LLM calls against a real HTTP server speaking the OpenAI and Anthropic protocols, with faults."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr
from redis.asyncio import Redis
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from baton.activities.llm import LlmActivities, llm_activities
from baton.activities.llm.breaker import RedisBreakerStore
from baton.activities.llm.errors import retry_after
from baton.agents import AgentSpec, LlmRetryOptions, tool
from baton.llm import ChatMessage, LlmRequest
from baton.settings import BatonSettings
from baton.testing import ProcessEnvironment
from tests.llm_server import FakeLlmServer, Reply

FAST_RETRY = LlmRetryOptions(initial_interval_seconds=0.1, maximum_interval_seconds=1)
REDIS_URL = "redis://127.0.0.1:6379/0"
COUNTED = [("l1", "hit"), ("l1", "miss"), ("l2", "hit"), ("l2", "miss")]


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def server() -> Iterator[FakeLlmServer]:
    with FakeLlmServer() as s:
        yield s


@pytest.fixture
def llm_settings(settings: BatonSettings, server: FakeLlmServer) -> BatonSettings:
    return settings.model_copy(
        update={
            "openai_base_url": server.url,
            "openai_api_key": SecretStr("sk-test-key"),
            "anthropic_base_url": server.base,
            "anthropic_api_key": SecretStr("ak-test-key"),
            "llm_timeout_seconds": 1.0,
            "breaker_open_seconds": 0.5,
        }
    )


@pytest.fixture
async def agents(
    temporal: WorkflowEnvironment, llm_settings: BatonSettings
) -> AsyncIterator[ProcessEnvironment]:
    async with ProcessEnvironment(settings=llm_settings, client=temporal.client) as env:
        yield env


def agent(**fields: Any) -> AgentSpec:
    return AgentSpec(
        **{
            "name": "Tester",
            "instructions": "You are a careful tester.",
            "model": "openai:gpt-test",
            "retry": FAST_RETRY,
            **fields,
        }
    )


async def eventually(condition: Callable[[], object], within: float = 30) -> None:
    """Wait until `condition()` is true; fail (not hang) if it is not within `within` seconds."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), within)


async def attempts(handle: WorkflowHandle[Any, Any]) -> list[int]:
    """The attempt each finished activity of a run ended on, from the run's history."""
    history = await handle.fetch_history()
    return [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
    ]


def request(text: str = "hello", **fields: Any) -> LlmRequest:
    return LlmRequest(
        **{"model": "openai:gpt-test", "messages": [ChatMessage(role="user", content=text)], **fields}
    )


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=1.0) as client:
        yield client


async def test_agent_answers_over_the_openai_protocol(
    agents: ProcessEnvironment, server: FakeLlmServer
) -> None:
    tokens_before = metric(
        "baton_llm_tokens_total", provider="openai", model="gpt-test", agent="Tester", kind="output"
    )

    result = await agents.client.run_agent(agent(), "What is Baton?")

    assert result.answer == "echo: What is Baton?"
    tokens = metric(
        "baton_llm_tokens_total", provider="openai", model="gpt-test", agent="Tester", kind="output"
    )
    assert tokens - tokens_before == result.usage.output_tokens
    assert result.llm_calls == 1 and result.usage.output_tokens > 0
    (sent,) = server.calls("/chat/completions")
    assert sent.headers["authorization"] == "Bearer sk-test-key"
    assert sent.body["model"] == "gpt-test"
    assert [m["role"] for m in sent.body["messages"]] == ["system", "user"]


async def test_tool_calls_run_as_activities_and_invented_tools_are_refused(
    agents: ProcessEnvironment, server: FakeLlmServer
) -> None:
    server.then(
        Reply.call("word_count", text="one two three"), Reply.call("delete_everything"), Reply.text("done")
    )

    result = await agents.client.run_agent(agent(tools=["word_count"]), "count words")

    assert result.answer == "done"
    assert (result.llm_calls, result.tool_calls) == (3, 2)
    second, third = server.calls()[1].body, server.calls()[2].body
    assert second["tools"][0]["function"]["name"] == "word_count"
    assert second["tools"][0]["function"]["parameters"]["required"] == ["text"]
    assert second["messages"][-1] == {"role": "tool", "content": "3", "tool_call_id": "call_1"}
    assert "no tool named 'delete_everything'" in third["messages"][-1]["content"]


async def test_streamed_answers_are_assembled(agents: ProcessEnvironment, server: FakeLlmServer) -> None:
    server.then(Reply(content="a streamed answer in pieces", chunk_delay=0.02))

    result = await agents.client.run_agent(agent(stream=True), "stream please")

    assert result.answer == "a streamed answer in pieces"
    assert server.calls()[0].body["stream"] is True
    assert result.usage.input_tokens > 0


async def test_a_long_stream_heartbeats_and_a_stalled_one_is_retried(
    agents: ProcessEnvironment, server: FakeLlmServer
) -> None:
    # 12 pieces, 0.25 s apart: 3 s in all, three times the heartbeat timeout.
    long_answer = " ".join(f"w{i}" for i in range(12))
    stalled = Reply(content="a stream that stops", pause_after_first=5)
    server.then(Reply(content=long_answer, chunk_delay=0.25), stalled, Reply.text("after the stall"))
    streaming = agent(stream=True, heartbeat_seconds=1.0)

    assert (await agents.client.run_agent(streaming, "long")).answer == long_answer
    assert (await agents.client.run_agent(streaming, "stall")).answer == "after the stall"
    assert len(server.calls()) == 3


async def test_a_stream_cut_short_is_retried_not_taken_as_the_answer(
    agents: ProcessEnvironment, server: FakeLlmServer
) -> None:
    server.then(Reply(content="half an answer", cut_stream=True), Reply(content="the whole answer"))
    result = await agents.client.run_agent(agent(stream=True), "stream")
    assert result.answer == "the whole answer" and len(server.calls()) == 2


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "86400"}, 600.0),  # capped: the agent's backoff decides beyond ten minutes
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # a date in the past: at once
        ({"retry-after": "soon"}, None),
    ],
)
def test_retry_after_is_read_safely(headers: dict[str, str], seconds: float | None) -> None:
    delay = retry_after(httpx.Response(429, headers=headers))
    assert (delay.total_seconds() if delay is not None else None) == seconds


@tool
async def slow_lookup(seconds: float) -> str:
    """Looks something up, slowly."""
    SLOW_TOOL_STARTED.set()
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        SLOW_TOOL_CANCELLED.set()
        raise
    return "found"


SLOW_TOOL_STARTED, SLOW_TOOL_CANCELLED = asyncio.Event(), asyncio.Event()


async def test_cancelling_during_a_tool_call_cancels_the_run_and_the_tool(
    agents: ProcessEnvironment, server: FakeLlmServer
) -> None:
    SLOW_TOOL_STARTED.clear()
    SLOW_TOOL_CANCELLED.clear()
    server.then(Reply.call("slow_lookup", seconds=120))
    handle = await agents.client.start_agent(agent(tools=["slow_lookup"], heartbeat_seconds=1), "look it up")
    await asyncio.wait_for(SLOW_TOOL_STARTED.wait(), 30)
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert isinstance(failure.value.cause, CancelledError)
    # The tool itself was stopped, not left running for its two minutes.
    await asyncio.wait_for(SLOW_TOOL_CANCELLED.wait(), 30)
    assert len(server.calls()) == 1  # the model was not asked again with a "tool failed" message


@pytest.mark.parametrize("stream", [False, True])
async def test_cancelling_during_an_llm_call_hangs_up_on_the_provider(
    temporal: WorkflowEnvironment, llm_settings: BatonSettings, server: FakeLlmServer, stream: bool
) -> None:
    # A stream heartbeats before its first token too: cancellation reaches a call only so.
    patient = llm_settings.model_copy(update={"llm_timeout_seconds": 120.0})
    server.then(Reply.hang(120))
    async with ProcessEnvironment(settings=patient, client=temporal.client) as env:
        handle = await env.client.start_agent(agent(heartbeat_seconds=1, stream=stream), "think hard")
        await eventually(server.calls)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        assert isinstance(failure.value.cause, CancelledError)
        # The call in flight was cancelled too: Baton closed the connection instead of waiting
        # two minutes for an answer nobody will read (and paying for its tokens).
        await eventually(lambda: server.abandoned)
    assert server.abandoned == server.calls()


async def test_azure_openai_uses_the_deployment_and_api_version(
    temporal: WorkflowEnvironment, llm_settings: BatonSettings, server: FakeLlmServer
) -> None:
    settings = llm_settings.model_copy(
        update={"azure_openai_endpoint": server.base, "azure_openai_api_key": SecretStr("az-key")}
    )
    async with ProcessEnvironment(settings=settings, client=temporal.client) as env:
        result = await env.client.run_agent(agent(model="azure:my-gpt-deployment"), "hi azure")

    assert result.answer == "echo: hi azure"
    (sent,) = server.calls()
    assert sent.path == "/openai/deployments/my-gpt-deployment/chat/completions?api-version=2024-10-21"
    assert sent.headers["api-key"] == "az-key" and "authorization" not in sent.headers


@pytest.mark.parametrize("provider", ["ollama", "vllm"])
async def test_ollama_and_vllm_speak_the_openai_protocol(
    temporal: WorkflowEnvironment, llm_settings: BatonSettings, server: FakeLlmServer, provider: str
) -> None:
    settings = llm_settings.model_copy(update={f"{provider}_base_url": server.url})
    async with ProcessEnvironment(settings=settings, client=temporal.client) as env:
        result = await env.client.run_agent(agent(model=f"{provider}:llama3.1"), "hi")

    assert result.answer == "echo: hi"
    assert server.calls()[0].body["model"] == "llama3.1"


async def test_an_unconfigured_provider_fails_at_once(agents: ProcessEnvironment) -> None:
    with pytest.raises(WorkflowFailureError) as failure:
        await agents.client.run_agent(agent(model="azure:gpt"), "hi")
    assert "BATON_AZURE_OPENAI_ENDPOINT" in str(failure.value.cause.cause)


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_messages_with_tool_calls(
    agents: ProcessEnvironment, server: FakeLlmServer, stream: bool
) -> None:
    server.then(Reply.call("word_count", text="a b"), Reply.text("two words"))

    result = await agents.client.run_agent(
        agent(model="anthropic:claude-test", tools=["word_count"], stream=stream), "count"
    )

    assert result.answer == "two words"
    first, second = (c.body for c in server.calls("/v1/messages"))
    assert first["system"] == "You are a careful tester."
    assert server.calls()[0].headers["x-api-key"] == "ak-test-key"
    assert second["messages"][-1]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": "2",
    }


async def test_429_is_retried_after_the_delay_the_provider_asked_for(
    agents: ProcessEnvironment, server: FakeLlmServer
) -> None:
    server.then(Reply.fail(429, retry_after="1"), Reply.text("finally"))

    result = await agents.client.run_agent(agent(), "busy?")

    assert result.answer == "finally"
    first, second = server.calls()
    # The agent's own first retry delay is 0.1 s; the provider asked for 1 s.
    assert second.at - first.at >= 0.9


async def test_5xx_hangs_and_malformed_answers_are_retried(
    agents: ProcessEnvironment, server: FakeLlmServer
) -> None:
    server.then(Reply.fail(503), Reply.hang(3), Reply.broken(), Reply.text("recovered"))

    result = await agents.client.run_agent(
        agent(retry=FAST_RETRY.model_copy(update={"max_attempts": 4})), "flaky"
    )

    assert result.answer == "recovered"
    assert len(server.calls()) == 4


async def test_six_seconds_of_server_errors_delay_the_agent_instead_of_failing_it(
    agents: ProcessEnvironment, server: FakeLlmServer
) -> None:
    # The default policy: the seed's three fast tries (0, 2 and 6 s) fall inside the outage; the
    # fourth, 8 s later, finds the provider back.
    server.outage(6.5, Reply.fail(503, "upstream overloaded"))

    result = await agents.client.run_agent(agent(retry=LlmRetryOptions()), "still there?")

    assert result.answer == "echo: still there?"
    assert len(server.calls()) == 4


def test_the_default_llm_retry_policy_backs_off_to_a_cap_for_hours() -> None:
    retry = LlmRetryOptions()
    policy = retry.policy()
    assert (policy.initial_interval.total_seconds(), policy.backoff_coefficient) == (2.0, 2.0)
    assert policy.maximum_interval is not None and policy.maximum_interval.total_seconds() == 300
    assert policy.maximum_attempts == 0  # unlimited: the window bounds the retries
    assert retry.window.total_seconds() == 6 * 3600


async def test_server_errors_fail_the_run_once_the_retry_window_has_passed(
    agents: ProcessEnvironment, server: FakeLlmServer
) -> None:
    server.outage(120, Reply.fail(500, "model overloaded"))
    short_window = FAST_RETRY.model_copy(update={"maximum_interval_seconds": 0.5, "window_seconds": 5})

    with pytest.raises(WorkflowFailureError) as failure:
        await agents.client.run_agent(agent(retry=short_window, timeout_seconds=2), "doomed")

    assert len(server.calls()) > 3  # retried past the seed's three tries, until the window closed
    cause: BaseException | None = failure.value  # the run failed with the provider's last answer
    while cause is not None and not isinstance(cause, ApplicationError):
        cause = cause.__cause__
    assert isinstance(cause, ApplicationError) and cause.type == "ProviderUnavailable"
    assert "500" in cause.message and "model overloaded" in cause.message


async def test_failures_that_open_the_breaker_are_retried_when_it_half_opens(
    agents: ProcessEnvironment, server: FakeLlmServer
) -> None:
    # Five failures open the breaker, two probes fail and reopen it, the third probe succeeds.
    server.then(*[Reply.fail(503)] * 7)
    handle = await agents.client.start_agent(agent(), "flaky")

    assert (await handle.result()).answer == "echo: flaky"
    # Every attempt reached the provider: none was spent failing fast at the open breaker.
    assert await attempts(handle) == [len(server.calls())] == [8]


async def test_a_call_that_meets_an_open_breaker_waits_for_it_to_half_open(
    temporal: WorkflowEnvironment, llm_settings: BatonSettings, server: FakeLlmServer
) -> None:
    shared = llm_settings.model_copy(update={"redis_url": SecretStr(REDIS_URL)})
    redis = Redis.from_url(REDIS_URL)
    breaker = RedisBreakerStore(redis)
    endpoint = llm_settings.openai_base_url
    try:
        await breaker.close(endpoint)
        async with ProcessEnvironment(settings=shared, client=temporal.client) as env:
            # Opened by other calls, for 2 s: at the 0.1-1 s backoff of `agent()`, about five
            # attempts would fail fast if the first did not wait for the half-open probe.
            await breaker.open(endpoint, time.time() + 2)
            handle = await env.client.start_agent(agent(max_turns=1), "after the outage")
            assert (await handle.result()).answer == "echo: after the outage"
        assert len(server.calls()) == 1
        assert await attempts(handle) == [2]  # one attempt met the breaker, the next was the probe
    finally:
        await breaker.close(endpoint)
        await redis.aclose()


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_rejected_requests_fail_at_once_saying_what_the_provider_answered(
    agents: ProcessEnvironment, server: FakeLlmServer, status: int
) -> None:
    server.then(Reply.fail(status, "model 'gpt-test' does not exist; mail admin@example.com"))

    with pytest.raises(WorkflowFailureError) as failure:
        await agents.client.run_agent(agent(), "anything")

    assert len(server.calls()) == 1
    cause = failure.value.cause.cause
    assert isinstance(cause, ApplicationError) and cause.type == "ProviderRejected" and cause.non_retryable
    assert f"rejected the request with {status}" in cause.message
    assert "model 'gpt-test' does not exist" in cause.message
    assert "admin@example.com" not in cause.message  # the provider's echo is masked too


def activities(settings: BatonSettings, http: httpx.AsyncClient, redis: Redis | None = None) -> LlmActivities:
    return llm_activities(settings, http, redis)


async def test_breaker_opens_after_five_failures_and_a_probe_closes_it(
    llm_settings: BatonSettings, server: FakeLlmServer, http: httpx.AsyncClient
) -> None:
    llm = activities(llm_settings, http)
    env = ActivityEnvironment()
    server.then(*[Reply.fail(500)] * 5)
    for _ in range(5):
        with pytest.raises(ApplicationError, match="answered 500"):
            await env.run(llm.complete, request(temperature=0.5))

    with pytest.raises(ApplicationError) as open_error:
        await env.run(llm.complete, request(temperature=0.5))
    assert open_error.value.type == "CircuitOpen"
    assert metric("baton_llm_circuit_state", endpoint=llm_settings.openai_base_url) == 2
    assert open_error.value.next_retry_delay is not None
    assert 0 < open_error.value.next_retry_delay.total_seconds() <= 0.5
    assert len(server.calls()) == 5  # failed fast, never sent

    await asyncio.sleep(0.6)
    probe = await env.run(llm.complete, request(temperature=0.5))
    assert probe.message.content == "echo: hello"
    assert (await env.run(llm.complete, request("again", temperature=0.5))).message.content == "echo: again"
    assert metric("baton_llm_circuit_state", endpoint=llm_settings.openai_base_url) == 0


async def test_breaker_state_is_shared_through_redis(
    llm_settings: BatonSettings, server: FakeLlmServer, http: httpx.AsyncClient
) -> None:
    redis = Redis.from_url(REDIS_URL)
    endpoint = llm_settings.openai_base_url
    await redis.delete(*(f"baton:breaker:{endpoint}:{p}" for p in ("failures", "open", "probe")))
    replica_a, replica_b = activities(llm_settings, http, redis), activities(llm_settings, http, redis)
    env = ActivityEnvironment()
    server.then(*[Reply.fail(502)] * 5)
    try:
        for _ in range(5):
            with pytest.raises(ApplicationError, match="answered 502"):
                await env.run(replica_a.complete, request(temperature=0.5))
        with pytest.raises(ApplicationError) as open_error:
            await env.run(replica_b.complete, request(temperature=0.5))
        assert open_error.value.type == "CircuitOpen"
        assert len(server.calls()) == 5
    finally:
        await redis.delete(*(f"baton:breaker:{endpoint}:{p}" for p in ("failures", "open", "probe")))
        await redis.aclose()


async def test_deterministic_requests_hit_l1_then_l2_across_replicas(
    llm_settings: BatonSettings, server: FakeLlmServer, http: httpx.AsyncClient
) -> None:
    settings = llm_settings.model_copy(update={"redis_url": SecretStr(REDIS_URL)})
    redis = Redis.from_url(REDIS_URL)
    replica_a, replica_b = activities(settings, http, redis), activities(settings, http, redis)
    env = ActivityEnvironment()
    secret_prompt = f"cache me {id(server)}"
    before = {key: metric("baton_llm_cache_total", level=key[0], result=key[1]) for key in COUNTED}
    try:
        first = await env.run(replica_a.complete, request(secret_prompt))
        again = await env.run(replica_a.complete, request(secret_prompt))
        elsewhere = await env.run(replica_b.complete, request(secret_prompt))
        then_local = await env.run(replica_b.complete, request(secret_prompt))

        assert (first.cached, again.cached, elsewhere.cached, then_local.cached) == (None, "l1", "l2", "l1")
        assert first.message == again.message == elsewhere.message
        assert len(server.calls()) == 1
        stored = [await redis.get(k) async for k in redis.scan_iter("baton:llm:*")]
        assert stored and not any(secret_prompt.encode() in v for v in stored)  # sealed, not plaintext
        counted = {
            key: metric("baton_llm_cache_total", level=key[0], result=key[1]) - before[key] for key in COUNTED
        }
        assert counted == {("l1", "hit"): 2, ("l1", "miss"): 2, ("l2", "hit"): 1, ("l2", "miss"): 1}
    finally:
        await redis.aclose()


async def test_creative_requests_are_not_cached(
    llm_settings: BatonSettings, server: FakeLlmServer, http: httpx.AsyncClient
) -> None:
    llm, env = activities(llm_settings, http), ActivityEnvironment()
    await env.run(llm.complete, request(temperature=0.7))
    await env.run(llm.complete, request(temperature=0.7))
    await env.run(llm.complete, request(cache="never"))
    await env.run(llm.complete, request(cache="never"))
    assert len(server.calls()) == 4


async def test_identical_concurrent_requests_make_one_call(
    llm_settings: BatonSettings, server: FakeLlmServer, http: httpx.AsyncClient
) -> None:
    llm, env = activities(llm_settings, http), ActivityEnvironment()
    server.then(Reply(content="shared", hang_seconds=0.3))

    answers = await asyncio.gather(*(env.run(llm.complete, request("same question")) for _ in range(8)))

    assert {a.message.content for a in answers} == {"shared"}
    assert len(server.calls()) == 1


async def test_pii_is_masked_before_the_request_leaves(
    agents: ProcessEnvironment, server: FakeLlmServer
) -> None:
    text = "Refund jane.doe@example.com, card 4111 1111 1111 1111, SSN 123-45-6789, order #12345678."

    await agents.client.run_agent(agent(pii="mask"), text)

    sent = json.dumps(server.calls()[0].body)
    for value in ("jane.doe@example.com", "4111 1111 1111 1111", "123-45-6789"):
        assert value not in sent
    assert "[EMAIL]" in sent and "[CARD]" in sent and "[SSN]" in sent
    assert "#12345678" in sent


async def test_pseudonyms_are_restored_in_the_answer(
    agents: ProcessEnvironment, server: FakeLlmServer
) -> None:
    text = "Write to jane.doe@example.com about IBAN DE89 3704 0044 0532 0130 00"

    result = await agents.client.run_agent(agent(pii="pseudonymise"), text)

    sent = json.dumps(server.calls()[0].body)
    assert "jane.doe@example.com" not in sent and "DE89 3704 0044 0532 0130 00" not in sent
    assert "[EMAIL_" in sent
    assert result.answer == f"echo: {text}"  # the model saw tokens; the caller sees the values


async def test_local_model_calls_tools_and_labels_its_answers(agents: ProcessEnvironment) -> None:
    analyst = AgentSpec(
        name="Analyst",
        instructions="You are a market analyst. Size markets with the tools you have.",
        tools=["market_size"],
    )

    result = await agents.client.run_agent(analyst, "How big is the robotics market in 2027?")

    assert result.simulated and result.tool_calls == 1 and result.llm_calls == 2
    assert result.answer.startswith("[simulated by Baton's local model] Market analyst")
    assert "Using market_size" in result.answer and "robotics" in result.answer


async def test_the_llm_queue_rate_limit_spaces_calls_out(
    temporal: WorkflowEnvironment, llm_settings: BatonSettings, server: FakeLlmServer
) -> None:
    settings = llm_settings.model_copy(update={"llm_rate_limit": 2.0})
    async with ProcessEnvironment(settings=settings, client=temporal.client) as env:
        await asyncio.gather(*(env.client.run_agent(agent(), f"call {i}") for i in range(6)))

    times = sorted(call.at for call in server.calls())
    assert len(times) == 6
    # Two calls a second (allowing for a first burst): six calls cannot all start within 1.5 s.
    assert times[-1] - times[0] >= 1.5, [round(t - times[0], 2) for t in times]


async def test_a_worker_lost_mid_call_resumes_after_the_last_finished_call(
    agents: ProcessEnvironment, server: FakeLlmServer
) -> None:
    server.then(Reply.call("word_count", text="a b c"), Reply.hang(30), Reply.text("done"))
    handle = await agents.client.start_agent(agent(tools=["word_count"], timeout_seconds=5), "count")
    while len(server.calls()) < 2:  # the second LLM call hangs: the worker dies under it
        await asyncio.sleep(0.05)

    await agents.stop_worker()
    await agents.start_worker()
    result = await handle.result()

    assert result.answer == "done" and result.tool_calls == 1
    first, hung, retried = (c.body for c in server.calls())
    assert len(first["messages"]) == 2  # the first call was not made again
    assert hung["messages"] == retried["messages"] and retried["messages"][-1]["content"] == "3"

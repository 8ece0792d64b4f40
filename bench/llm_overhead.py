"""What Baton adds to an LLM call, measured side by side against a direct httpx call.

One fake OpenAI-protocol server (tests/llm_server.py) on localhost answers every request.
  direct:    httpx POST /chat/completions, as hand-written code would
  activity:  Baton's LLM activity code called in-process (PII masking, breaker, metrics)
  workflow:  `AgentWorkflow` on the dev server: one workflow, one `baton.llm_complete` activity
  hand:      a hand-written workflow whose one activity makes the direct call (hand_written.py),
             on the same server, converter and task queue layout Temporal users start with
The server answers at once (what Baton's own cost is) and after 200 ms (a fast model), and the
kinds are interleaved so machine noise hits all alike. Then the response cache: an L1 hit, and
an L2 hit (Redis on localhost, sealed entries) in a process whose L1 is empty.

Run: make bench   (or: .venv/bin/python bench/llm_overhead.py)
The last line:
  llm_overhead code_ratio=<activity/direct, instant> workflow_ratio=<workflow/direct, 200 ms>
  workflow_overhead_ms=<workflow-direct, 200 ms> vs_hand=<workflow/hand, instant>
  vs_hand_200ms=<workflow/hand, 200 ms> l1_hit_us=<p50> l2_hit_ms=<p50>
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from pydantic import SecretStr
from redis.asyncio import Redis
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

sys.path.insert(0, str(Path(__file__).parents[1]))
sys.path.insert(0, str(Path(__file__).parent))

from hand_written import HandWrittenLlmCall, call_provider

from baton.activities.llm import llm_activities
from baton.activities.llm.cache import TtlLru
from baton.agents import AgentSpec
from baton.llm import ChatMessage, LlmRequest
from baton.settings import BatonSettings
from baton.starter.client import BatonClient
from baton.testing import start_dev_server
from tests.llm_server import FakeLlmServer

RUNS = int(os.environ.get("BENCH_LLM_RUNS", 40))
HAND_QUEUE = "bench-llm-hand"
MODEL_LATENCY = 0.2
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PROMPT = "Summarise the quarterly numbers for jane.doe@example.com: revenue up 12% to $4.2M."


def p50(samples: list[float]) -> float:
    return statistics.median(samples)


async def timed(call: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await call()
    return time.perf_counter() - start


async def interleaved(kinds: dict[str, Callable[[], Awaitable[object]]], runs: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {k: [] for k in kinds}
    for call in kinds.values():  # warm-up: connections, caches, the sandbox
        await call()
    order = list(kinds)
    for i in range(runs):
        # Rotate who goes first: background work of one kind must not always land on the next.
        for kind in order[i % len(order) :] + order[: i % len(order)]:
            samples[kind].append(await timed(kinds[kind]))
    return samples


async def main() -> None:
    from baton.workers.worker import running_workers

    data_dir = Path(tempfile.mkdtemp(prefix="baton-bench-"))
    with FakeLlmServer() as server:
        settings = BatonSettings(
            data_dir=data_dir,
            workflows_queue="bench-llm-wf",
            llm_queue="bench-llm",
            openai_base_url=server.url,
            openai_api_key="sk-bench",
        )
        body = {"model": "gpt-bench", "messages": [{"role": "user", "content": PROMPT}], "temperature": 0.5}
        agent = AgentSpec(
            name="Bench", instructions="You are terse.", model="openai:gpt-bench", temperature=0.5
        )
        request = LlmRequest(
            model="openai:gpt-bench",
            messages=[
                ChatMessage(role="system", content=agent.instructions),
                ChatMessage(role="user", content=PROMPT),
            ],
            temperature=0.5,
            pii="mask",
        )
        env = await start_dev_server()
        redis = Redis.from_url(REDIS_URL)
        try:
            async with (
                httpx.AsyncClient(timeout=30) as http,
                running_workers(env.client, settings, [settings.workflows_queue, settings.llm_queue]),
                Worker(
                    env.client,
                    task_queue=HAND_QUEUE,
                    workflows=[HandWrittenLlmCall],
                    activities=[call_provider],
                ),
            ):
                llm = llm_activities(settings, http, None)
                baton = BatonClient(env.client, settings)

                async def direct() -> None:
                    response = await http.post(
                        f"{server.url}/chat/completions",
                        json=body,
                        headers={"authorization": "Bearer sk-bench"},
                    )
                    response.raise_for_status()

                in_activity = ActivityEnvironment()  # the activity's context, without Temporal

                async def activity_code() -> None:
                    await in_activity.run(llm.complete, request)

                async def workflow() -> None:
                    await baton.run_agent(agent, PROMPT)

                async def hand() -> None:
                    await env.client.execute_workflow(
                        HandWrittenLlmCall.run,
                        args=[f"{server.url}/chat/completions", body],
                        id=f"bench-llm-hand-{uuid.uuid4()}",
                        task_queue=HAND_QUEUE,
                    )

                instant = await interleaved(
                    {"direct": direct, "activity": activity_code, "workflow": workflow, "hand": hand}, RUNS
                )
                server.latency = MODEL_LATENCY
                slow = await interleaved({"direct": direct, "workflow": workflow, "hand": hand}, RUNS // 2)
                server.latency = 0.0

                cached_request = request.model_copy(update={"temperature": 0.0})
                l1_hits = []
                await in_activity.run(llm.complete, cached_request)
                for _ in range(RUNS * 5):
                    l1_hits.append(await timed(lambda: in_activity.run(llm.complete, cached_request)))
                shared = llm_activities(
                    settings.model_copy(update={"redis_url": SecretStr(REDIS_URL)}), http, redis
                )
                await in_activity.run(shared.complete, cached_request)  # fills L2
                l2_hits = []
                for _ in range(RUNS * 2):
                    shared.cache.l1 = TtlLru(settings.cache_max_entries, settings.cache_ttl_seconds)
                    l2_hits.append(await timed(lambda: in_activity.run(shared.complete, cached_request)))
        finally:
            await redis.aclose()
            await env.shutdown()

    def ms(x: float) -> str:
        return f"{x * 1000:.2f} ms"

    print(f"server answers at once ({RUNS} runs each, p50):")
    for kind, samples in instant.items():
        print(f"  {kind:9} {ms(p50(samples))}")
    print(f"server answers after {MODEL_LATENCY * 1000:.0f} ms ({RUNS // 2} runs each, p50):")
    for kind, samples in slow.items():
        print(f"  {kind:9} {ms(p50(samples))}")
    print(f"cache hits (p50): L1 {p50(l1_hits) * 1e6:.0f} µs, L2 {ms(p50(l2_hits))}")
    code_ratio = p50(instant["activity"]) / p50(instant["direct"])
    workflow_ratio = p50(slow["workflow"]) / p50(slow["direct"])
    overhead = p50(slow["workflow"]) - p50(slow["direct"])
    print(
        f"llm_overhead code_ratio={code_ratio:.2f} workflow_ratio={workflow_ratio:.2f} "
        f"workflow_overhead_ms={overhead * 1000:.1f} "
        f"vs_hand={p50(instant['workflow']) / p50(instant['hand']):.3f} "
        f"vs_hand_200ms={p50(slow['workflow']) / p50(slow['hand']):.3f} l1_hit_us={p50(l1_hits) * 1e6:.0f} "
        f"l2_hit_ms={p50(l2_hits) * 1000:.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
    sys.stdout.flush()
    os._exit(0)

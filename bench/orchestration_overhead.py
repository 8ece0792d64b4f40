"""What Baton's orchestration costs per agent turn, against calling the same agents directly.

On one dev server (Baton's configuration) with the local model, side by side, alternating:
  (a) `DirectTurns` (bench/direct_turns.py): a hand-written workflow calling the LLM activity for
      N turns, agents in turn, each seeing the conversation so far;
  (b) `GroupChatOrchestration` with the round-robin manager for N rounds, the same agents.
Each kind runs R times; the per-turn time is the run's duration divided by N.

Run: make bench   (or: .venv/bin/python bench/orchestration_overhead.py)
The last line:
  orchestration_overhead turns=N per_turn_ms=<b> direct_per_turn_ms=<a> ratio=<b/a>
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # the worker imports the baseline by module name
sys.path.insert(0, str(Path(__file__).parents[1]))

from direct_turns import DirectTurns, DirectTurnsInput
from temporalio.worker import Worker

from baton.agents import AgentSpec
from baton.orchestration import GroupChatInput
from baton.settings import BatonSettings
from baton.starter.client import BatonClient
from baton.testing import start_dev_server
from baton.workers.worker import running_workers

TURNS = int(os.environ.get("BENCH_TURNS", 20))
REPEATS = int(os.environ.get("BENCH_REPEATS", 8))
TASK = "Plan single sign-on for the billing portal."


async def main() -> None:
    env = await start_dev_server()
    settings = BatonSettings(
        data_dir=Path(tempfile.mkdtemp(prefix="baton-bench-")),
        workflows_queue="bench-orch",
        llm_queue="bench-orch-llm",
    )
    agents = [
        AgentSpec(name="Developer", instructions="You are a senior software developer."),
        AgentSpec(name="QA", instructions="You are a QA engineer."),
        AgentSpec(name="BusinessAnalyst", instructions="You are a business analyst."),
    ]
    baton = BatonClient(env.client, settings)
    samples: dict[str, list[float]] = {"direct": [], "orchestration": []}
    try:
        async with (
            running_workers(env.client, settings, [settings.workflows_queue, settings.llm_queue]),
            Worker(env.client, task_queue="bench-direct", workflows=[DirectTurns]),
        ):

            async def direct() -> None:
                await env.client.execute_workflow(
                    DirectTurns.run,
                    DirectTurnsInput(task=TASK, agents=agents, turns=TURNS, llm_queue=settings.llm_queue),
                    id=f"bench-direct-{uuid.uuid4()}",
                    task_queue="bench-direct",
                )

            async def orchestration() -> None:
                chat = GroupChatInput(task=TASK, agents=agents, max_rounds=TURNS, approval_phrase=None)
                result = await (await baton.orchestrate(chat)).result()
                assert result.rounds == TURNS

            kinds = {"direct": direct, "orchestration": orchestration}
            for run in kinds.values():  # warm-up
                await run()
            for i in range(REPEATS):
                for kind in list(kinds)[i % 2 :] + list(kinds)[: i % 2]:
                    start = time.perf_counter()
                    await kinds[kind]()
                    samples[kind].append((time.perf_counter() - start) / TURNS)
    finally:
        await env.shutdown()
    direct_ms = statistics.median(samples["direct"]) * 1000
    orch_ms = statistics.median(samples["orchestration"]) * 1000
    print(f"{REPEATS} runs of {TURNS} turns each (median per turn):")
    print(f"  direct activity calls  {direct_ms:.1f} ms")
    print(f"  group chat workflow    {orch_ms:.1f} ms")
    print(
        f"orchestration_overhead turns={TURNS} per_turn_ms={orch_ms:.1f} "
        f"direct_per_turn_ms={direct_ms:.1f} ratio={orch_ms / direct_ms:.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
    sys.stdout.flush()
    os._exit(0)

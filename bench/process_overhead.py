"""What the process interpreter costs over hand-written Temporal code, measured side by side.

On one dev server and one worker, the same 3-step linear job runs as
  (a) a hand-written workflow calling 3 activities,
  (b) a Baton `ProcessWorkflow`,
  (c) the Baton process with its steps as local activities and eager workflow start.
Latency: 50 sequential runs of each, interleaved a, b, c so that machine noise hits all alike.
Throughput: batches of 200 concurrent runs, in the order a, b, b, a to even out drift.
All of it twice: on the stock dev server, and on the dev server as Baton configures it
(`baton.temporal.DEV_SERVER_DYNAMIC_CONFIG`), whose workflow tasks are not rate-limited.

Run: make bench   (or: .venv/bin/python bench/process_overhead.py)
The last line is, for Baton's configuration:
  process_overhead p50_ratio=<b/a> throughput_ratio=<b/a> local_eager_p50_ratio=<c/a>
"""

from __future__ import annotations

import asyncio
import compileall
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from temporalio.worker import Worker

sys.path.insert(0, str(Path(__file__).parent))  # workers import the steps by module name

from hand_written import HandWritten, step_one, step_three, step_two
from three_steps import three_steps

from baton.activities.steps import StepActivities
from baton.settings import BatonSettings
from baton.starter.client import BatonClient
from baton.temporal import dev_server_args
from baton.testing import start_dev_server
from baton.workflows.process import ProcessWorkflow

QUEUE = "bench"
SEQUENTIAL = int(os.environ.get("BENCH_SEQUENTIAL", 50))
CONCURRENT = int(os.environ.get("BENCH_CONCURRENT", 200))
WARMUP = int(os.environ.get("BENCH_WARMUP", 10))


async def timed(run: Callable[[], Awaitable[str]]) -> float:
    start = time.perf_counter()
    assert await run() == "x-1-2-3"
    return time.perf_counter() - start


SERVER_CONFIGS = {
    "stock": [],  # the dev server as `temporal server start-dev` ships
    "embedded": dev_server_args(),  # as Baton runs it: baton dev, baton demo, ProcessEnvironment
}


async def measure(server_args: list[str]) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Sequential latencies (s) of each kind, and runs per second of the concurrent batches."""
    env = await start_dev_server(extra_args=server_args)
    settings = BatonSettings(workflows_queue=QUEUE, steps_queue=QUEUE, step_modules=["three_steps"])
    baton = BatonClient(env.client, settings)
    remote = three_steps("BenchRemote", local=False).build(settings.step_modules)
    local = three_steps("BenchLocal", local=True).build(settings.step_modules)
    steps = StepActivities(settings.step_modules)

    async def hand_written() -> str:
        return await env.client.execute_workflow(
            HandWritten.run, "x", id=f"bench-hand-{uuid.uuid4()}", task_queue=QUEUE
        )

    async def process() -> str:
        return (await (await baton.start_process(remote, "Start", "x")).result()).output

    async def local_eager() -> str:
        return (await (await baton.start_process(local, "Start", "x", eager=True)).result()).output

    kinds = {"hand_written": hand_written, "process": process, "local_eager": local_eager}
    async with Worker(
        env.client,
        task_queue=QUEUE,
        workflows=[HandWritten, ProcessWorkflow],
        activities=[step_one, step_two, step_three, steps.run_step],
    ):
        for run in kinds.values():
            for _ in range(WARMUP):
                await timed(run)
        latencies: dict[str, list[float]] = {k: [] for k in kinds}
        for _ in range(SEQUENTIAL):
            for kind, run in kinds.items():
                latencies[kind].append(await timed(run))
        elapsed = {"hand_written": 0.0, "process": 0.0}
        for kind in ("hand_written", "process", "process", "hand_written"):
            start = time.perf_counter()
            await asyncio.gather(*(timed(kinds[kind]) for _ in range(CONCURRENT)))
            elapsed[kind] += time.perf_counter() - start
    await env.shutdown()
    return latencies, {k: 2 * CONCURRENT / v for k, v in elapsed.items()}


def report(config: str, latencies: dict[str, list[float]], throughput: dict[str, float]) -> str:
    """Print the table of one server configuration; return its summary line."""
    p50 = {k: statistics.median(v) * 1000 for k, v in latencies.items()}
    print(f"\n{config} dev server")
    print(f"{'':14} {'p50 ms':>8} {'p90 ms':>8} {f'runs/s ({CONCURRENT} concurrent)':>24}")
    for kind, values in latencies.items():
        p90 = statistics.quantiles(values, n=10)[-1] * 1000
        rate = f"{throughput[kind]:.1f}" if kind in throughput else "-"
        print(f"{kind:14} {p50[kind]:8.1f} {p90:8.1f} {rate:>24}")
    return (
        f"p50_ratio={p50['process'] / p50['hand_written']:.3f} "
        f"throughput_ratio={throughput['process'] / throughput['hand_written']:.3f} "
        f"local_eager_p50_ratio={p50['local_eager'] / p50['hand_written']:.3f}"
    )


async def main() -> None:
    # The workflow sandbox re-imports workflow modules for every run; compile them to bytecode
    # first, as an installed package is, so that neither side pays for compiling source each run
    # (PYTHONDONTWRITEBYTECODE would otherwise leave no .pyc behind).
    root = Path(__file__).parents[1]
    for folder in ("workflows", "bench"):
        compileall.compile_dir(root / folder, quiet=1)
    summaries = {config: report(config, *await measure(args)) for config, args in SERVER_CONFIGS.items()}
    print()
    print(f"process_overhead[stock] {summaries['stock']}")
    print(f"process_overhead {summaries['embedded']}")


if __name__ == "__main__":
    asyncio.run(main())
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown, which the SDK's threads can crash (sdk-python issue 300)

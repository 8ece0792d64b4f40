"""Baton against what a team would otherwise pick, side by side in one process and one run.

The same 3-step job (each step appends to a string), as:
  hand_written       hand-written Temporal code, its activities on one task queue, with Baton's
                     shipped converter (encryption, out-of-band storage): the same security
  baton              a Baton process with default steps and the default queue layout, as shipped
  baton_unencrypted  the same without keys (no encryption, run grants or out-of-band storage), on
                     workers of its own
  hand_local_eager   hand-written, the steps as local activities, eager workflow start
  baton_local_eager  Baton's fast path: `local=True` steps, `eager=True` start
  dbos               DBOS Transact: a workflow of 3 steps, its system database on PostgreSQL
  langgraph          LangGraph: 3 nodes with the PostgreSQL checkpointer, durability "sync"
DBOS and LangGraph come from the optional `bench` extra (`make bench-contenders` installs it);
without it their rows are left out. Temporal contenders run on Baton's embedded dev server
(SQLite file, workflow-task dispatch not rate-limited); PostgreSQL keeps its durable commits.

Measured, interleaved so that noise on the shared machine hits all alike:
  latency     `BENCH_SEQUENTIAL` (100) sequential runs each after `BENCH_WARMUP` (10);
  throughput  `BENCH_CONCURRENT` (400) runs each with `BENCH_IN_FLIGHT` (32) in flight, in
              two halves, the contenders' order reversed for the second;
  per step    chains of 1 and 9 steps (Temporal contenders): p50 and history bytes per extra step,
              Baton both as shipped and with BATON_STEP_ACTIVITY_TYPES (`baton_typed`).

Run: .venv/bin/python bench/process_contenders.py
The last lines: process_contenders <ratios against hand_written and dbos>
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypedDict

sys.path.insert(0, str(Path(__file__).parent))  # workers import the steps by module name

from hand_written import (
    HandWritten,
    HandWrittenChain,
    HandWrittenLocal,
    next_step,
    step_one,
    step_three,
    step_two,
)
from temporalio.client import Client
from temporalio.worker import Worker
from three_steps import chain, three_steps

from baton.persistence.db import engine_from_settings
from baton.settings import BatonSettings
from baton.starter.client import BatonClient
from baton.temporal import data_converter, settings_converter
from baton.testing import start_dev_server
from baton.workers.worker import running_workers

SEQUENTIAL = int(os.environ.get("BENCH_SEQUENTIAL", 100))
WARMUP = int(os.environ.get("BENCH_WARMUP", 10))
CONCURRENT = int(os.environ.get("BENCH_CONCURRENT", 400))
IN_FLIGHT = int(os.environ.get("BENCH_IN_FLIGHT", 32))
POSTGRES = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
HAND_QUEUE = "bench-hand-written"
EXPECTED = "x-1-2-3"
CHAIN_SHORT, CHAIN_LONG = 1, 9

Run = Callable[[], Awaitable[str]]


async def temporal_contenders(
    client: Client, settings: BatonSettings, unencrypted: BatonClient
) -> dict[str, Run]:
    baton = BatonClient(client, settings)
    remote = three_steps("BenchContender", local=False).build(settings.step_modules)
    local = three_steps("BenchContenderLocal", local=True).build(settings.step_modules)

    async def hand_written() -> str:
        return await client.execute_workflow(
            HandWritten.run, "x", id=f"bench-hand-{uuid.uuid4()}", task_queue=HAND_QUEUE
        )

    async def hand_local_eager() -> str:
        handle = await client.start_workflow(
            HandWrittenLocal.run,
            "x",
            id=f"bench-hand-local-{uuid.uuid4()}",
            task_queue=HAND_QUEUE,
            request_eager_start=True,
        )
        return await handle.result()

    async def baton_process() -> str:
        return (await (await baton.start_process(remote, "Start", "x")).result()).output

    async def baton_local_eager() -> str:
        return (await (await baton.start_process(local, "Start", "x", eager=True)).result()).output

    async def baton_unencrypted() -> str:
        return (await (await unencrypted.start_process(remote, "Start", "x")).result()).output

    return {
        "hand_written": hand_written,
        "baton": baton_process,
        "baton_unencrypted": baton_unencrypted,
        "hand_local_eager": hand_local_eager,
        "baton_local_eager": baton_local_eager,
    }


async def dbos_contender(database: str) -> Run | None:
    try:
        from dbos import DBOS
    except ImportError:
        return None

    @DBOS.step()
    async def one(value: str) -> str:
        return value + "-1"

    @DBOS.step()
    async def two(value: str) -> str:
        return value + "-2"

    @DBOS.step()
    async def three(value: str) -> str:
        return value + "-3"

    @DBOS.workflow()
    async def three_steps_dbos(value: str) -> str:
        return await three(await two(await one(value)))

    DBOS(config={"name": "baton-bench", "system_database_url": database, "log_level": "WARNING"})
    DBOS.launch()
    return lambda: three_steps_dbos("x")


async def langgraph_contender(database: str, stack: Any) -> Run | None:
    try:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from langgraph.graph import END, START, StateGraph
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool
    except ImportError:
        return None

    class State(TypedDict):
        value: str

    graph = StateGraph(State)
    for n in (1, 2, 3):
        graph.add_node(f"step{n}", lambda state, n=n: {"value": f"{state['value']}-{n}"})
    graph.add_edge(START, "step1")
    graph.add_edge("step1", "step2")
    graph.add_edge("step2", "step3")
    graph.add_edge("step3", END)
    pool = AsyncConnectionPool(
        database,
        min_size=1,
        max_size=IN_FLIGHT,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        open=False,
    )
    await pool.open()
    stack.push_async_callback(pool.close)
    saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
    await saver.setup()
    app = graph.compile(checkpointer=saver)

    async def run() -> str:
        config = {"configurable": {"thread_id": str(uuid.uuid4())}}
        state = await app.ainvoke({"value": "x"}, config, durability="sync")  # type: ignore[arg-type]
        return str(state["value"])

    return run


async def fresh_database(name: str) -> str:
    """A new PostgreSQL database `name` (dropped first if an earlier run left it)."""
    import asyncpg

    admin = await asyncpg.connect(f"{POSTGRES}/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return f"{POSTGRES}/{name}"


async def timed(run: Run) -> float:
    start = time.perf_counter()
    result = await run()
    assert result == EXPECTED, result
    return time.perf_counter() - start


async def latencies(kinds: dict[str, Run]) -> dict[str, list[float]]:
    for run in kinds.values():
        for _ in range(WARMUP):
            await timed(run)
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    for n in range(SEQUENTIAL):
        order = list(kinds) if n % 2 == 0 else list(reversed(kinds))
        for kind in order:
            times[kind].append(await timed(kinds[kind]))
    return times


async def throughputs(kinds: dict[str, Run]) -> dict[str, float]:
    elapsed = dict.fromkeys(kinds, 0.0)

    async def one(run: Run, slots: asyncio.Semaphore) -> None:
        async with slots:
            await timed(run)

    for order in (list(kinds), list(reversed(kinds))):
        for kind in order:
            slots = asyncio.Semaphore(IN_FLIGHT)
            start = time.perf_counter()
            await asyncio.gather(*(one(kinds[kind], slots) for _ in range(CONCURRENT // 2)))
            elapsed[kind] += time.perf_counter() - start
    return {kind: CONCURRENT / seconds for kind, seconds in elapsed.items()}


async def per_step(client: Client, baton: BatonClient) -> dict[str, tuple[float, float]]:
    """For hand-written and Baton: (ms, history bytes) each step beyond the first costs."""
    modules = baton.settings.step_modules
    chains = {n: chain(f"BenchChain{n}", n).build(modules) for n in (CHAIN_SHORT, CHAIN_LONG)}

    async def hand(steps: int) -> tuple[float, int]:
        workflow_id = f"bench-chain-{uuid.uuid4()}"
        start = time.perf_counter()
        await client.execute_workflow(
            HandWrittenChain.run, args=["x", steps], id=workflow_id, task_queue=HAND_QUEUE
        )
        took = time.perf_counter() - start
        return took, await history_bytes(client, workflow_id)

    def process(baton: BatonClient) -> Callable[[int], Awaitable[tuple[float, int]]]:
        async def job(steps: int) -> tuple[float, int]:
            start = time.perf_counter()
            run = await baton.start_process(chains[steps], "Start", "x")
            await run.result()
            took = time.perf_counter() - start
            return took, await history_bytes(client, run.id)

        return job

    typed = BatonClient(client, baton.settings.model_copy(update={"step_activity_types": True}))
    costs = {}
    for name, job in (("hand_written", hand), ("baton", process(baton)), ("baton_typed", process(typed))):
        samples: dict[int, list[tuple[float, int]]] = {CHAIN_SHORT: [], CHAIN_LONG: []}
        for n in range(WARMUP + SEQUENTIAL // 4):
            for steps in samples:
                sample = await job(steps)
                if n >= WARMUP:
                    samples[steps].append(sample)
        extra = CHAIN_LONG - CHAIN_SHORT
        p50 = {s: statistics.median(t for t, _ in v) for s, v in samples.items()}
        size = {s: statistics.median(b for _, b in v) for s, v in samples.items()}
        costs[name] = (
            (p50[CHAIN_LONG] - p50[CHAIN_SHORT]) / extra * 1000,
            (size[CHAIN_LONG] - size[CHAIN_SHORT]) / extra,
        )
    return costs


async def history_bytes(client: Client, workflow_id: str) -> int:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return sum(event.ByteSize() for event in history.events)


async def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="baton-bench-contenders-"))
    settings = BatonSettings(data_dir=data_dir, step_modules=["three_steps"])
    converter = settings_converter(settings, engine_from_settings(settings))
    env = await start_dev_server(converter, db_file=data_dir / "temporal.db")
    client = env.client
    async with contextlib.AsyncExitStack() as stack:
        queues = [q for q in settings.all_queues if q != settings.compliance_queue]
        await stack.enter_async_context(running_workers(client, settings, queues))
        await stack.enter_async_context(
            Worker(
                client,
                task_queue=HAND_QUEUE,
                workflows=[HandWritten, HandWrittenLocal, HandWrittenChain],
                activities=[step_one, step_two, step_three, next_step],
            )
        )
        # What encryption costs: the same Baton process, its own workers on queues of their own,
        # with the plain converter.
        plain_settings = settings.model_copy(update={"workflows_queue": "bench-unencrypted-workflows"})
        plain_client = Client(
            client.service_client, namespace=client.namespace, data_converter=data_converter()
        )
        await stack.enter_async_context(
            running_workers(plain_client, plain_settings, [plain_settings.workflows_queue])
        )
        unencrypted = BatonClient(plain_client, plain_settings)
        kinds = await temporal_contenders(client, settings, unencrypted)
        dbos = await dbos_contender(await fresh_database("baton_bench_dbos"))
        if dbos is not None:
            kinds["dbos"] = dbos
        langgraph = await langgraph_contender(await fresh_database("baton_bench_langgraph"), stack)
        if langgraph is not None:
            kinds["langgraph"] = langgraph

        sequential = await latencies(kinds)
        rates = await throughputs(kinds)
        steps = await per_step(client, BatonClient(client, settings))
    await env.shutdown()

    p50 = {kind: statistics.median(times) * 1000 for kind, times in sequential.items()}
    print(f"\n{'':18} {'p50 ms':>8} {'p90 ms':>8} {f'runs/s ({IN_FLIGHT} in flight)':>22}")
    for kind, times in sequential.items():
        p90 = statistics.quantiles(times, n=10)[-1] * 1000
        print(f"{kind:18} {p50[kind]:8.1f} {p90:8.1f} {rates[kind]:22.1f}")
    print(f"\nper step beyond the first ({CHAIN_SHORT} and {CHAIN_LONG} steps):")
    for kind, (ms, size) in steps.items():
        print(f"{kind:18} {ms:6.1f} ms {size:7.0f} B of history")

    def ratios(kind: str, against: str) -> str:
        return (
            f"{kind}/{against} p50={p50[kind] / p50[against]:.3f} "
            f"runs_per_s={rates[kind] / rates[against]:.3f}"
        )

    print()
    print(f"process_contenders {ratios('baton', 'hand_written')}")
    print(f"process_contenders {ratios('baton_local_eager', 'hand_local_eager')}")
    print(f"process_contenders {ratios('baton_unencrypted', 'baton')}")
    print(
        f"process_contenders step_cost={steps['baton'][0] / steps['hand_written'][0]:.3f} "
        f"step_history={steps['baton'][1] / steps['hand_written'][1]:.3f}"
    )
    print(
        f"process_contenders typed step_cost={steps['baton_typed'][0] / steps['hand_written'][0]:.3f} "
        f"step_history={steps['baton_typed'][1] / steps['hand_written'][1]:.3f}"
    )
    if "dbos" in kinds:
        print(f"process_contenders {ratios('baton_local_eager', 'dbos')}")
    if "langgraph" in kinds and "dbos" in kinds:
        print(f"process_contenders {ratios('langgraph', 'dbos')}")


if __name__ == "__main__":
    asyncio.run(main())
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown, which the SDK's threads can crash (sdk-python issue 300)

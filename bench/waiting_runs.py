"""Runs that wait for a person: worker memory per waiting run, and how fast they finish once
the events come, Baton against hand-written Temporal code, side by side in one invocation.

Each contender's worker runs in a process of its own (its memory is what is measured), with a
workflow cache of `BENCH_CACHE` runs (all of them by default: with fewer, the runs evicted replay
their history when their event comes); both use Baton's shipped converter (encryption):
  hand_written  `HandWrittenApproval`: a step, a signal, a step
  baton         the same as a Baton process (`three_steps.approval`): a step, the external event
                `Approve` (`ProcessRun.send_event`: an update that checks the data, audited), a step
Temporal is Baton's embedded dev server (SQLite file, workflow-task dispatch not rate-limited).

Measured for each: `BENCH_WAITING` (2000) runs started and waiting after their first step, the
worker's resident memory before and after, divided by the runs; then the events sent with
`BENCH_IN_FLIGHT` (32) in flight, each awaited to completion: completions per second and the
p50 of sending one event.

Run: .venv/bin/python bench/waiting_runs.py
The last line: waiting_runs kb_per_run=<baton>/<hand> completions=<baton/hand> send_p50=<baton/hand>
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # workers import the steps by module name

from hand_written import HandWrittenApproval, step_one, step_two
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.worker import Worker
from three_steps import approval

from baton.persistence.db import engine_from_settings
from baton.settings import BatonSettings
from baton.starter.client import BatonClient, ProcessRun
from baton.temporal import settings_converter
from baton.testing import start_dev_server
from baton.workers.worker import running_workers

WAITING = int(os.environ.get("BENCH_WAITING", 2000))
IN_FLIGHT = int(os.environ.get("BENCH_IN_FLIGHT", 32))
CACHE = int(os.environ.get("BENCH_CACHE", WAITING + 100))
HAND_QUEUE = "bench-waiting-hand"
CONTENDERS = ("hand_written", "baton")


def bench_settings(data_dir: Path) -> BatonSettings:
    return BatonSettings(
        data_dir=data_dir,
        step_modules=["three_steps"],
        workflows_queue="bench-waiting-baton",
        workflow_cache_size=CACHE,
    )


async def serve(kind: str, address: str, data_dir: Path) -> None:
    """A worker process of one contender, until SIGTERM; SIGUSR1 collects garbage (before a reading)."""
    settings = bench_settings(data_dir)
    client = await Client.connect(
        address, data_converter=settings_converter(settings, engine_from_settings(settings))
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, gc.collect)
    async with contextlib.AsyncExitStack() as stack:
        if kind == "baton":
            await stack.enter_async_context(running_workers(client, settings, [settings.workflows_queue]))
        else:
            await stack.enter_async_context(
                Worker(
                    client,
                    task_queue=HAND_QUEUE,
                    workflows=[HandWrittenApproval],
                    activities=[step_one, step_two],
                    max_cached_workflows=settings.workflow_cache_size,
                )
            )
        print("ready", flush=True)
        await stop.wait()


async def resident_kb(pid: int) -> int:
    os.kill(pid, signal.SIGUSR1)
    await asyncio.sleep(1.0)
    status = await asyncio.to_thread(Path(f"/proc/{pid}/status").read_text)
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


class Contender:
    """Starts runs that wait, says whether one waits, and sends its event."""

    def __init__(
        self,
        start: Callable[[], Awaitable[object]],
        waiting: Callable[[object], Awaitable[bool]],
        approve: Callable[[object], Awaitable[str]],
    ) -> None:
        self.start, self.waiting, self.approve = start, waiting, approve


def contenders(client: Client, settings: BatonSettings) -> dict[str, Contender]:
    baton = BatonClient(client, settings)
    process = approval("BenchWaiting").build(settings.step_modules)

    async def hand_start() -> WorkflowHandle:
        return await client.start_workflow(
            HandWrittenApproval.run, "x", id=f"bench-waiting-hand-{uuid.uuid4()}", task_queue=HAND_QUEUE
        )

    async def hand_waiting(handle: object) -> bool:
        assert isinstance(handle, WorkflowHandle)
        return await handle.query(HandWrittenApproval.waiting)

    async def hand_approve(handle: object) -> str:
        assert isinstance(handle, WorkflowHandle)
        await handle.signal(HandWrittenApproval.approve, True)
        return await handle.result()

    async def baton_start() -> ProcessRun:
        return await baton.start_process(process, "Start", "x")

    async def baton_waiting(run: object) -> bool:
        assert isinstance(run, ProcessRun)
        return (await run.state()).status == "waiting"

    async def baton_approve(run: object) -> str:
        assert isinstance(run, ProcessRun)
        await run.send_event("Approve", True)
        return (await run.result()).output

    return {
        "hand_written": Contender(hand_start, hand_waiting, hand_approve),
        "baton": Contender(baton_start, baton_waiting, baton_approve),
    }


async def in_flight(jobs: list[Callable[[], Awaitable[object]]]) -> list[object]:
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def one(job: Callable[[], Awaitable[object]]) -> object:
        async with slots:
            return await job()

    return await asyncio.gather(*(one(job) for job in jobs))


async def all_waiting(contender: Contender, runs: list[object]) -> None:
    async def check(run: object) -> bool:
        try:
            return await contender.waiting(run)
        except RPCError:  # a query of a run out of the cache replays it first, and may time out
            return False

    left = runs
    while left:
        waits = await in_flight([lambda run=run: check(run) for run in left])
        left = [run for run, waiting in zip(left, waits, strict=True) if not waiting]
        if left:
            await asyncio.sleep(0.5)


async def measure(contender: Contender, pid: int) -> dict[str, float]:
    warm = await in_flight([contender.start for _ in range(50)])
    await all_waiting(contender, warm)
    await in_flight([lambda run=run: contender.approve(run) for run in warm])
    before = await resident_kb(pid)
    runs = await in_flight([contender.start for _ in range(WAITING)])
    await all_waiting(contender, runs)
    after = await resident_kb(pid)
    sends: list[float] = []

    async def approve(run: object) -> None:
        start = time.perf_counter()
        result = await contender.approve(run)
        sends.append(time.perf_counter() - start)
        assert result == "x-1:approved-2", result

    start = time.perf_counter()
    await in_flight([lambda run=run: approve(run) for run in runs])
    elapsed = time.perf_counter() - start
    return {
        "kb_per_run": (after - before) / WAITING,
        "completions_per_s": WAITING / elapsed,
        "event_to_done_p50_ms": statistics.median(sends) * 1000,
    }


async def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="baton-bench-waiting-"))
    settings = bench_settings(data_dir)
    converter = settings_converter(settings, engine_from_settings(settings))
    env = await start_dev_server(converter, db_file=data_dir / "temporal.db")
    address = env.client.service_client.config.target_host
    workers = {
        kind: await asyncio.create_subprocess_exec(
            sys.executable, __file__, "worker", kind, address, str(data_dir), stdout=asyncio.subprocess.PIPE
        )
        for kind in CONTENDERS
    }
    try:
        for worker in workers.values():
            assert worker.stdout is not None and (await worker.stdout.readline()).strip() == b"ready"
        kinds = contenders(env.client, settings)
        results = {kind: await measure(kinds[kind], workers[kind].pid) for kind in CONTENDERS}
    finally:
        for worker in workers.values():
            worker.terminate()
            await worker.wait()
        await env.shutdown()

    print(f"\n{WAITING} waiting runs, workflow cache {CACHE}, events sent {IN_FLIGHT} in flight")
    print(f"{'':14} {'KB per run':>11} {'completions/s':>14} {'event to done p50 ms':>21}")
    for kind, r in results.items():
        print(
            f"{kind:14} {r['kb_per_run']:11.1f} {r['completions_per_s']:14.1f} {r['event_to_done_p50_ms']:21.1f}"
        )
    baton, hand = results["baton"], results["hand_written"]
    print(
        f"\nwaiting_runs kb_per_run={baton['kb_per_run']:.1f}/{hand['kb_per_run']:.1f} "
        f"completions={baton['completions_per_s'] / hand['completions_per_s']:.3f} "
        f"event_to_done_p50={baton['event_to_done_p50_ms'] / hand['event_to_done_p50_ms']:.3f}"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        asyncio.run(serve(sys.argv[2], sys.argv[3], Path(sys.argv[4])))
    else:
        asyncio.run(main())
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown, which the SDK's threads can crash (sdk-python issue 300)

"""Many data subjects waiting for their retention: start rate, and what they cost one worker.

SUBJECTS (default 10,000) subjects each get a processing record and their `SubjectRetention`
workflow (signal-with-start), from 32 concurrent starters, on the embedded dev server (as Baton
runs it: workflow-task dispatch not rate-limited) with one compliance worker in this process and
the SQLite app database. Measured: records plus retention starts per second, until the last
workflow has read its state and sleeps on its two-year timer; and the RSS of this process (the
starters and the worker, whose workflow cache keeps up to 10,000 sleeping workflows by default)
before and after, per subject.

Run: .venv/bin/python bench/retention_scale.py
The last line:
  retention_scale subjects=.. starts_per_s=.. rss_before_mb=.. rss_waiting_mb=.. per_subject_kb=..
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from temporalio.client import WorkflowExecutionStatus

from baton.compliance import LegalBasis, Processing, retention_workflow_id
from baton.persistence.db import engine_from_settings
from baton.settings import BatonSettings
from baton.starter import BatonClient
from baton.temporal import settings_converter, with_converter
from baton.testing import start_dev_server
from baton.workers.worker import build_workers
from baton.workflows.compliance import SubjectRetentionWorkflow

SUBJECTS = int(os.environ.get("BENCH_RETENTION_SUBJECTS", 10_000))
IN_FLIGHT = 32
PURPOSE = Processing(purpose="benchmark", legal_basis=LegalBasis.CONTRACT)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        settings = BatonSettings(
            data_dir=Path(folder), compliance_queue=f"bench-compliance-{uuid.uuid4().hex[:6]}"
        )
        env = await start_dev_server()
        engine = engine_from_settings(settings)
        client = with_converter(env.client, settings_converter(settings, engine))
        baton = BatonClient(client, settings)
        [worker] = build_workers(client, settings, [settings.compliance_queue])
        try:
            async with worker:
                await baton.records.state("warm-up")  # migrated and connected before the clock
                before = rss_mb()
                queue: asyncio.Queue[int] = asyncio.Queue()
                for n in range(SUBJECTS):
                    queue.put_nowait(n)

                async def starter() -> None:
                    while not queue.empty():
                        n = queue.get_nowait()
                        await baton.record_processing(f"subject-{n}@example.com", PURPOSE)

                started = time.perf_counter()
                await asyncio.gather(*(starter() for _ in range(IN_FLIGHT)))
                last = client.get_workflow_handle(
                    retention_workflow_id(baton.subjects.ref(f"subject-{SUBJECTS - 1}@example.com"))
                )
                while await last.query(SubjectRetentionWorkflow.state) is None:
                    await asyncio.sleep(0.1)
                elapsed = time.perf_counter() - started
                waiting = rss_mb()
                running = 0
                async for _ in client.list_workflows(
                    f"WorkflowType = 'SubjectRetention' AND TaskQueue = '{settings.compliance_queue}'"
                ):
                    running += 1
                assert (await last.describe()).status == WorkflowExecutionStatus.RUNNING
        finally:
            await baton.close()
            await engine.dispose()
            await env.shutdown()
    print(
        f"{SUBJECTS} subjects, {running} retention workflows listed, {IN_FLIGHT} starters, embedded dev server"
    )
    print(
        f"retention_scale subjects={SUBJECTS} starts_per_s={SUBJECTS / elapsed:.0f} rss_before_mb={before:.0f} "
        f"rss_waiting_mb={waiting:.0f} per_subject_kb={(waiting - before) * 1024 / SUBJECTS:.1f}"
    )
    os._exit(0)  # the SDK's runtime threads can crash interpreter teardown (sdk-python issue 300)


if __name__ == "__main__":
    asyncio.run(main())

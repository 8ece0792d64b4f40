"""The benchmarks' baseline: the jobs as hand-written Temporal code.

Kept free of Baton imports: the workflow sandbox re-imports this module for every run, and
the baseline must not pay for modules it does not use.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

TIMEOUT = timedelta(seconds=30)
RETRY = RetryPolicy(maximum_attempts=3)


def append(value: str, n: int) -> str:
    return f"{value}-{n}"


@activity.defn
async def step_one(value: str) -> str:
    return append(value, 1)


@activity.defn
async def step_two(value: str) -> str:
    return append(value, 2)


@activity.defn
async def step_three(value: str) -> str:
    return append(value, 3)


@activity.defn
async def next_step(value: str) -> str:
    return value + "+"


@workflow.defn
class HandWritten:
    @workflow.run
    async def run(self, value: str) -> str:
        for step in (step_one, step_two, step_three):
            value = await workflow.execute_activity(
                step, value, start_to_close_timeout=TIMEOUT, retry_policy=RETRY
            )
        return value


@workflow.defn
class HandWrittenLocal:
    """The 3 steps as local activities: what a Temporal user writes for short steps."""

    @workflow.run
    async def run(self, value: str) -> str:
        for step in (step_one, step_two, step_three):
            value = await workflow.execute_local_activity(
                step, value, start_to_close_timeout=TIMEOUT, retry_policy=RETRY
            )
        return value


@workflow.defn
class HandWrittenChain:
    """`steps` activities one after another: the cost of one more step."""

    @workflow.run
    async def run(self, value: str, steps: int) -> str:
        for _ in range(steps):
            value = await workflow.execute_activity(
                next_step, value, start_to_close_timeout=TIMEOUT, retry_policy=RETRY
            )
        return value

"""The benchmarks' baseline: the jobs as hand-written Temporal code.

Kept free of Baton imports: the workflow sandbox re-imports this module for every run, and
the baseline must not pay for modules it does not use.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    import httpx

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


@workflow.defn
class HandWrittenApproval:
    """A step, then a person's approval (a signal), then another step: a run that waits."""

    def __init__(self) -> None:
        self.approved: bool | None = None
        self.stepped = False

    @workflow.run
    async def run(self, value: str) -> str:
        value = await workflow.execute_activity(
            step_one, value, start_to_close_timeout=TIMEOUT, retry_policy=RETRY
        )
        self.stepped = True
        await workflow.wait_condition(lambda: self.approved is not None)
        value = f"{value}:{'approved' if self.approved else 'rejected'}"
        return await workflow.execute_activity(
            step_two, value, start_to_close_timeout=TIMEOUT, retry_policy=RETRY
        )

    @workflow.signal
    def approve(self, approved: bool) -> None:
        self.approved = approved

    @workflow.query
    def waiting(self) -> bool:
        return self.stepped and self.approved is None


_http: httpx.AsyncClient | None = None


@activity.defn
async def call_provider(url: str, body: dict[str, Any]) -> str:
    """What a hand-written LLM activity does: POST the chat request, return the answer."""
    global _http
    _http = _http or httpx.AsyncClient(timeout=30)
    response = await _http.post(url, json=body, headers={"authorization": "Bearer sk-bench"})
    response.raise_for_status()
    return str(response.json()["choices"][0]["message"]["content"])


@workflow.defn
class HandWrittenLlmCall:
    """One LLM call as an activity on the workflow's own queue: a plain Temporal agent turn."""

    @workflow.run
    async def run(self, url: str, body: dict[str, Any]) -> str:
        return await workflow.execute_activity(
            call_provider, args=[url, body], start_to_close_timeout=TIMEOUT, retry_policy=RETRY
        )

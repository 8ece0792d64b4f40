"""A workflow that reads the clock, outside the sandbox: what the replay tests must catch."""

import time

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from tests.clock import now


@workflow.defn(sandboxed=False)
class ReadsTheClock:
    @workflow.run
    async def run(self) -> float:
        return time.time()  # nondeterministic: a replay gets another value


@workflow.defn(sandboxed=False)
class ReadsTheClockElsewhere:
    @workflow.run
    async def run(self) -> float:
        return now()  # as nondeterministic, from a module passed through

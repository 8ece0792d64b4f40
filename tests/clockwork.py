"""A workflow that reads the clock, outside the sandbox: what the replay tests must catch."""

import time

from temporalio import workflow


@workflow.defn(sandboxed=False)
class ReadsTheClock:
    @workflow.run
    async def run(self) -> float:
        return time.time()  # nondeterministic: a replay gets another value

"""Steps and processes that the tests run. Step classes live at module level so workers import them."""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy

from baton.process import NoState, ProcessBuilder, ProcessStep, RetryOptions, StepContext, step_function

ALLOWED = ["baton.examples", "tests"]
"""Step modules the tests allow: the examples and the steps below."""
FAST_RETRY = RetryOptions(max_attempts=3, initial_interval_seconds=0.05, backoff_coefficient=2.0)
JOURNAL_ENV = "BATON_TEST_JOURNAL"


def record(entry: str) -> None:
    """Append a side effect to the journal that the test reads back (works across processes)."""
    with Path(os.environ[JOURNAL_ENV]).open("a") as journal:
        journal.write(entry + "\n")


class Calls(BaseModel):
    calls: int = 0
    seen: list[str] = Field(default_factory=list)


class Step1(ProcessStep[Calls]):
    @step_function
    async def run(self, ctx: StepContext, value: str) -> str:
        self.state.calls += 1
        self.state.seen.append(value)
        record("step-1")
        return value + "-1"


class Step2(ProcessStep[Calls]):
    @step_function
    async def run(self, ctx: StepContext, value: str) -> str:
        self.state.calls += 1
        record("step-2")
        gate = os.environ.get("BATON_TEST_GATE")
        if gate:  # hold here until the test removes the gate file: the moment to kill a worker
            try:
                while Path(gate).exists():
                    await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                record("step-2-cancelled")
                raise
        return value + "-2"


class Step3(ProcessStep[Calls]):
    @step_function
    async def run(self, ctx: StepContext, value: str) -> str:
        self.state.calls += 1
        record("step-3")
        return value + "-3"


def linear(name: str = "Linear", **step_options: object) -> ProcessBuilder:
    b = ProcessBuilder(name)
    s1 = b.add_step(Step1, **step_options)  # type: ignore[arg-type]
    s2 = b.add_step(Step2, **step_options)  # type: ignore[arg-type]
    s3 = b.add_step(Step3, **step_options)  # type: ignore[arg-type]
    b.on_input_event("Start").send_event_to(s1)
    s1.on_function_result().send_event_to(s2)
    s2.on_function_result().send_event_to(s3)
    s3.on_function_result().stop_process()
    return b


class Upper(ProcessStep[NoState]):
    @step_function
    async def run(self, ctx: StepContext, value: str) -> str:
        return value.upper()


class Reverse(ProcessStep[NoState]):
    @step_function
    async def run(self, ctx: StepContext, value: str) -> str:
        return value[::-1]


class Pairs(BaseModel):
    joined: list[str] = Field(default_factory=list)


class Join(ProcessStep[Pairs]):
    """A fan-in: runs once both parameters are filled."""

    @step_function
    async def join(self, ctx: StepContext, left: str, right: str) -> str:
        joined = f"{left}+{right}"
        self.state.joined.append(joined)
        return joined


def fan_out_fan_in() -> ProcessBuilder:
    b = ProcessBuilder("FanOutFanIn")
    upper, reverse, join = b.add_step(Upper), b.add_step(Reverse), b.add_step(Join)
    b.on_input_event("Start").send_event_to(upper).send_event_to(reverse)
    upper.on_function_result().send_event_to(join, parameter="left")
    reverse.on_function_result().send_event_to(join, parameter="right")
    join.on_function_result().stop_process()
    return b


class CollectTwo(ProcessStep[Pairs]):
    @step_function
    async def add(self, ctx: StepContext, item: str) -> None:
        self.state.joined.append(item)
        if len(self.state.joined) == 2:
            await ctx.emit_event("Done", self.state.joined)


def queued_fan_in() -> ProcessBuilder:
    """Left and Right arrive as external events; extra Lefts wait for later Rights."""
    b = ProcessBuilder("QueuedFanIn")
    join, collect = b.add_step(Join), b.add_step(CollectTwo)
    b.on_input_event("Left").send_event_to(join, parameter="left")
    b.on_input_event("Right").send_event_to(join, parameter="right")
    join.on_function_result().send_event_to(collect)
    collect.on_event("Done").stop_process()
    return b


class Count(BaseModel):
    laps: int = 0


class Lap(ProcessStep[Count]):
    """A revision loop: goes round until `n` reaches `limit`."""

    @step_function
    async def lap(self, ctx: StepContext, n: int) -> None:
        self.state.laps += 1
        if n >= 5:
            await ctx.emit_event("Done", {"laps": self.state.laps})
        else:
            await ctx.emit_event("Again", n + 1)


PACE: asyncio.Queue[None] = asyncio.Queue()
"""Laps of `PacedLap` the test allows: one token per lap."""


class PacedLap(ProcessStep[Count]):
    """A loop that is never idle: each lap waits for the test's token, not for an event."""

    @step_function
    async def lap(self, ctx: StepContext, n: int) -> None:
        await PACE.get()
        await ctx.emit_event("Done" if n >= 6 else "Again", n + 1)


def busy_loop_with_pokes(max_supersteps: int) -> ProcessBuilder:
    """PacedLap goes round six times while people send Poke events (upper-cased by Upper)."""
    b = ProcessBuilder("BusyLoop", max_supersteps=max_supersteps)
    lap, upper = b.add_step(PacedLap), b.add_step(Upper)
    b.on_input_event("Start").send_event_to(lap)
    b.on_input_event("Poke").send_event_to(upper)
    lap.on_event("Again").send_event_to(lap)
    lap.on_event("Done").stop_process()
    return b


def cycle(max_supersteps: int = 100) -> ProcessBuilder:
    b = ProcessBuilder("Cycle", max_supersteps=max_supersteps)
    lap = b.add_step(Lap)
    b.on_input_event("Start").send_event_to(lap)
    lap.on_event("Again").send_event_to(lap)
    lap.on_event("Done").stop_process()
    return b


class Flaky(ProcessStep[Calls]):
    @step_function
    async def run(self, ctx: StepContext, value: str) -> str:
        record(f"flaky-attempt-{ctx.attempt}")
        raise ValueError(f"cannot handle {value!r}")


class Fallback(ProcessStep[NoState]):
    @step_function
    async def recover(self, ctx: StepContext, failure: dict) -> dict:
        return {"recovered": True, "failure": failure}


class Outage(ProcessStep[NoState]):
    """A service that is down for its first five calls (an outage longer than three attempts)."""

    @step_function
    async def call(self, ctx: StepContext, value: str) -> str:
        record(f"outage-attempt-{ctx.attempt}")
        if ctx.attempt <= 5:
            raise ConnectionError("service unavailable")
        return f"{value}-served"


def riding_out_an_outage(retry: RetryOptions) -> ProcessBuilder:
    b = ProcessBuilder("RidingOut")
    outage = b.add_step(Outage, retry=retry, timeout=timedelta(seconds=5))
    b.on_input_event("Start").send_event_to(outage)
    outage.on_function_result().stop_process()
    return b


def failing(with_error_route: bool) -> ProcessBuilder:
    b = ProcessBuilder("Failing" if not with_error_route else "FailingRecovered")
    flaky = b.add_step(Flaky, retry=FAST_RETRY)
    b.on_input_event("Start").send_event_to(flaky)
    flaky.on_function_result().stop_process()
    if with_error_route:
        fallback = b.add_step(Fallback)
        flaky.on_error().send_event_to(fallback)
        fallback.on_function_result().stop_process()
    return b


def parent_with_subprocess() -> ProcessBuilder:
    child = ProcessBuilder("Child")
    c1, c2 = child.add_step(Step1), child.add_step(Step2)
    child.on_input_event("Begin").send_event_to(c1)
    c1.on_function_result().send_event_to(c2)
    c2.on_function_result().stop_process()

    b = ProcessBuilder("Parent")
    sub = b.add_process(child)
    s3 = b.add_step(Step3)
    b.on_input_event("Start").send_event_to(sub)
    sub.on_function_result().send_event_to(s3)
    s3.on_function_result().stop_process()
    return b


class Approval(BaseModel):
    approved: bool


class Gate(ProcessStep[NoState]):
    """Waits (as a fan-in) for a value and a person's approval."""

    @step_function
    async def decide(self, ctx: StepContext, value: str, approval: Approval) -> str:
        return f"{value}:{'approved' if approval.approved else 'rejected'}"


def approval_process(name: str = "Approval") -> ProcessBuilder:
    b = ProcessBuilder(name)
    upper, gate = b.add_step(Upper), b.add_step(Gate)
    b.on_input_event("Start").send_event_to(upper)
    upper.on_function_result().send_event_to(gate, parameter="value")
    b.on_input_event("ApprovalReceived").send_event_to(gate, parameter="approval")
    gate.on_function_result().stop_process()
    return b


def upper_only(name: str) -> ProcessBuilder:
    """A second version of `approval_process`: no approval any more."""
    b = ProcessBuilder(name)
    upper = b.add_step(Upper)
    b.on_input_event("Start").send_event_to(upper)
    upper.on_function_result().stop_process()
    return b


cli_approval = approval_process("CliApproval").build(["tests"])
"""A built process, for `baton process run tests.steps:cli_approval`."""


class Spinner(ProcessStep[Count]):
    """Two functions on one step: `again` keeps itself busy, `halt` must still get its turn."""

    @step_function
    async def again(self, ctx: StepContext, n: int) -> None:
        self.state.laps += 1
        await asyncio.sleep(0.05)
        await ctx.emit_event("Again", n + 1)

    @step_function
    async def halt(self, ctx: StepContext, reason: str) -> None:
        await ctx.emit_event("Halted", {"reason": reason, "laps": self.state.laps})


def spinner() -> ProcessBuilder:
    b = ProcessBuilder("Spinner", max_supersteps=200)
    spin = b.add_step(Spinner)
    b.on_input_event("Start").send_event_to(spin, function="again")
    b.on_input_event("Halt").send_event_to(spin, function="halt")
    spin.on_event("Again").send_event_to(spin, function="again")
    spin.on_event("Halted").stop_process()
    return b


class Chatty(ProcessStep[NoState]):
    """Logs through a plain logger of its own, as user code does."""

    @step_function
    async def run(self, ctx: StepContext, who: str) -> str:
        logging.getLogger("tests.steps.chatty").info("greeting %s", who)
        return f"hello {who}"


def chatty() -> ProcessBuilder:
    b = ProcessBuilder("Chatty")
    step = b.add_step(Chatty, name="Greeter")
    b.on_input_event("Start").send_event_to(step)
    step.on_function_result().stop_process()
    return b


@workflow.defn(sandboxed=False)  # the sandbox would re-import this module of steps for each run
class SchedulesAnActivity:
    """Schedules one activity by type, with a dict for input: as the workflow code of an earlier
    release scheduled its steps, or as a misrouted call would."""

    @workflow.run
    async def run(self, activity_type: str, input: dict[str, Any], task_queue: str) -> dict[str, Any]:
        return await workflow.execute_activity(
            activity_type,
            input,
            result_type=dict,
            task_queue=task_queue,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )

"""The benchmarks' jobs as Baton processes, in a module workers import by name."""

from __future__ import annotations

import itertools

from hand_written import append

from baton.process import NoState, ProcessBuilder, ProcessStep, StepContext, step_function


class One(ProcessStep[NoState]):
    @step_function
    async def run(self, ctx: StepContext, value: str) -> str:
        return append(value, 1)


class Two(ProcessStep[NoState]):
    @step_function
    async def run(self, ctx: StepContext, value: str) -> str:
        return append(value, 2)


class Three(ProcessStep[NoState]):
    @step_function
    async def run(self, ctx: StepContext, value: str) -> str:
        return append(value, 3)


class Next(ProcessStep[NoState]):
    @step_function
    async def run(self, ctx: StepContext, value: str) -> str:
        return value + "+"


def three_steps(name: str, local: bool) -> ProcessBuilder:
    b = ProcessBuilder(name)
    one, two, three = (b.add_step(cls, local=local) for cls in (One, Two, Three))
    b.on_input_event("Start").send_event_to(one)
    one.on_function_result().send_event_to(two)
    two.on_function_result().send_event_to(three)
    three.on_function_result().stop_process()
    return b


def chain(name: str, steps: int) -> ProcessBuilder:
    """`steps` steps one after another, as `hand_written.HandWrittenChain` runs them."""
    b = ProcessBuilder(name)
    handles = [b.add_step(Next, f"Next{n}") for n in range(steps)]
    b.on_input_event("Start").send_event_to(handles[0])
    for before, after in itertools.pairwise(handles):
        before.on_function_result().send_event_to(after)
    handles[-1].on_function_result().stop_process()
    return b


class Gate(ProcessStep[NoState]):
    """Takes the value and a person's approval, then goes on."""

    @step_function
    async def decide(self, ctx: StepContext, value: str, approved: bool) -> str:
        return append(f"{value}:{'approved' if approved else 'rejected'}", 2)


def approval(name: str) -> ProcessBuilder:
    """A step, then a person's approval, then another: as `hand_written.HandWrittenApproval`."""
    b = ProcessBuilder(name)
    one, gate = b.add_step(One), b.add_step(Gate)
    b.on_input_event("Start").send_event_to(one)
    one.on_function_result().send_event_to(gate, parameter="value")
    b.on_input_event("Approve").send_event_to(gate, parameter="approved")
    gate.on_function_result().stop_process()
    return b

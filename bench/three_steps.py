"""The benchmarks' 3-step job as a Baton process, in a module workers import by name."""

from __future__ import annotations

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


def three_steps(name: str, local: bool) -> ProcessBuilder:
    b = ProcessBuilder(name)
    one, two, three = (b.add_step(cls, local=local) for cls in (One, Two, Three))
    b.on_input_event("Start").send_event_to(one)
    one.on_function_result().send_event_to(two)
    two.on_function_result().send_event_to(three)
    three.on_function_result().stop_process()
    return b

"""The work the chaos suite keeps in flight: an order process with fan-out, fan-in, a person's
approval and a sub-process, and agents with a tool, each step and tool recording its executions
in the ledger. Step classes live at module level so the workers import them."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from baton.agents import AgentSpec, tool
from baton.compliance.processing import Processing
from baton.process import NoState, ProcessBuilder, ProcessStep, RetryOptions, StepContext, step_function
from tests.chaos.ledger import execution

STEP_MODULES = ["tests.chaos"]
TOOL_MODULES = ["tests.chaos.work"]
HEAVY_QUEUE = "chaos-heavy"
"""The queue of the step that needs memory: the suite starts a worker too small for it there."""
BALLAST_BYTES = 256 * 1024 * 1024


def manifest(order: str) -> str:
    """48 KB that do not compress below `payload_offload_bytes` (32 KB): an order carrying it is
    stored in the app database, by reference."""
    return base64.b64encode(random.Random(order).randbytes(36 * 1024)).decode()


PROCESSING = Processing(purpose="order fulfilment", legal_basis="contract", retention_days=30)

# A dead worker's step is handed to another after 5 s of silence; retries keep going for as long
# as faults last (an hour at most), with delays short enough to count recovery.
STEP_OPTIONS: dict[str, Any] = {
    "heartbeat_timeout": timedelta(seconds=5),
    "retry": RetryOptions(
        max_attempts=None, window_seconds=3600, initial_interval_seconds=0.5, maximum_interval_seconds=5
    ),
}


def pause(order: str, step: str) -> float:
    """How long `step` works on `order`: 0.2 to 1.0 s, the same on every attempt."""
    digest = hashlib.blake2b(f"{order}/{step}".encode(), digest_size=2).digest()
    return 0.2 + int.from_bytes(digest, "big") / 65535 * 0.8


class Order(BaseModel):
    id: str
    manifest: str = ""


class Approval(BaseModel):
    by: str


async def work(name: str, order: str) -> None:
    async with execution("step", name):
        await asyncio.sleep(pause(order, name))


class Prepare(ProcessStep[NoState]):
    @step_function
    async def run(self, ctx: StepContext, order: Order) -> Order:
        await work("Prepare", order.id)
        return order


class Pick(ProcessStep[NoState]):
    @step_function
    async def run(self, ctx: StepContext, order: Order) -> str:
        await work("Pick", order.id)
        return f"{order.id}:picked"


class Pack(ProcessStep[NoState]):
    @step_function
    async def run(self, ctx: StepContext, order: Order) -> str:
        await work("Pack", order.id)
        return f"{order.id}:packed"


class Weigh(ProcessStep[NoState]):
    """Needs memory: the worker the suite starts too small for it is killed by the kernel."""

    @step_function
    async def run(self, ctx: StepContext, order: Order) -> str:
        async with execution("step", "Weigh"):
            ballast = bytearray(BALLAST_BYTES)
            ballast[::4096] = b"\1" * len(range(0, BALLAST_BYTES, 4096))  # touch every page
            await asyncio.sleep(pause(order.id, "Weigh"))
            del ballast
        return f"{order.id}:weighed"


async def advance(step: str, token: str, outcome: str) -> str:
    """Work on the order a token such as `w1-3:picked` names; the token of what `step` did."""
    order = token.split(":")[0]
    await work(step, order)
    return f"{order}:{outcome}"


class Join(ProcessStep[NoState]):
    @step_function
    async def join(self, ctx: StepContext, picked: str, packed: str, weighed: str) -> str:
        return await advance("Join", picked, "ready")


class Gate(ProcessStep[NoState]):
    """Waits for a person's approval of the joined order."""

    @step_function
    async def decide(self, ctx: StepContext, ready: str, approval: Approval) -> str:
        return await advance("Gate", ready, "approved")


class Label(ProcessStep[NoState]):
    @step_function
    async def run(self, ctx: StepContext, data: str) -> str:
        return await advance("Label", data, "labelled")


class Dispatch(ProcessStep[NoState]):
    @step_function
    async def run(self, ctx: StepContext, labelled: str) -> str:
        return await advance("Dispatch", labelled, "dispatched")


class Close(ProcessStep[NoState]):
    @step_function
    async def run(self, ctx: StepContext, dispatched: str) -> str:
        return await advance("Close", dispatched, "closed")


STEPS_PER_ORDER = 9
"""Prepare, Pick, Pack, Weigh, Join, Gate, Label, Dispatch, Close."""


def order_process() -> ProcessBuilder:
    shipment = ProcessBuilder("ChaosShipment")
    label, dispatch = shipment.add_step(Label, **STEP_OPTIONS), shipment.add_step(Dispatch, **STEP_OPTIONS)
    shipment.on_input_event("Begin").send_event_to(label)
    label.on_function_result().send_event_to(dispatch)
    dispatch.on_function_result().stop_process()

    b = ProcessBuilder("ChaosOrder")
    prepare = b.add_step(Prepare, **STEP_OPTIONS)
    pick, pack = b.add_step(Pick, **STEP_OPTIONS), b.add_step(Pack, **STEP_OPTIONS)
    weigh = b.add_step(Weigh, task_queue=HEAVY_QUEUE, **STEP_OPTIONS)
    join, gate = b.add_step(Join, **STEP_OPTIONS), b.add_step(Gate, **STEP_OPTIONS)
    ship, close = b.add_process(shipment), b.add_step(Close, **STEP_OPTIONS)
    b.on_input_event("Start").send_event_to(prepare)
    prepare.on_function_result().send_event_to(pick).send_event_to(pack).send_event_to(weigh)
    pick.on_function_result().send_event_to(join, parameter="picked")
    pack.on_function_result().send_event_to(join, parameter="packed")
    weigh.on_function_result().send_event_to(join, parameter="weighed")
    join.on_function_result().send_event_to(gate, parameter="ready")
    b.on_input_event("Approved").send_event_to(gate, parameter="approval")
    gate.on_function_result().send_event_to(ship)
    ship.on_function_result().send_event_to(close)
    close.on_function_result().stop_process()
    return b


@tool
async def chaos_lookup(topic: str = "orders") -> str:
    """Look up what the records say about a topic."""
    async with execution("tool", "chaos_lookup"):
        await asyncio.sleep(0.2)
    return f"records about {topic}: 3 open orders"


def agent(name: str, *, tools: bool = True) -> AgentSpec:
    """An agent on the suite's LLM server, streaming its answers. Its calls retry for as long as a
    fault lasts, at most 5 s apart, and a call silent for 3 s is presumed lost."""
    return AgentSpec(
        name=name,
        instructions=f"You are {name}, who keeps orders moving.",
        description=f"{name} of the order desk",
        model="openai:gpt-chaos",
        tools=["chaos_lookup"] if tools else [],
        stream=True,
        timeout_seconds=3.0,
        heartbeat_seconds=3.0,
        retry={"initial_interval_seconds": 0.5, "maximum_interval_seconds": 5},
    )

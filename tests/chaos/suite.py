"""The chaos suite: keeps orders and orchestrations in flight on a real Baton stack, injects every
kind of fault in turn (each while new work starts), then counts what happened.

`python -m tests.chaos` (`make chaos`) runs the full scale and prints the report that
docs/RELIABILITY.md records; `tests/test_chaos.py` runs `SHORT` in `make test`.
"""

from __future__ import annotations

import asyncio
import functools
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, RPCTimeoutOrCancelledError, WorkflowExecutionStatus
from temporalio.exceptions import TimeoutError as TemporalTimeout
from temporalio.service import RPCError

from baton.agents import AgentSpec
from baton.errors import Unavailable
from baton.persistence.db import engine_from_settings
from baton.persistence.migrate import upgrade
from baton.settings import BatonSettings
from baton.starter.client import BatonClient
from tests.chaos import work
from tests.chaos.ledger import LEDGER_ENV, Execution, Ledger
from tests.chaos.stack import ChaosLlm, MemoryCage, Postgres, Redis, Temporal, Workers, worker_environment
from tests.llm_server import Reply

QUEUES = {
    "workflows": "chaos-workflows",
    "steps": "chaos-steps",
    "llm": "chaos-llm",
    "compliance": "chaos-compliance",
}
WORKERS_PER_QUEUE = {"workflows": 2, "steps": 2, "llm": 2, "compliance": 1}
PATTERNS = ("sequential", "concurrent", "group-chat", "handoff", "magentic")


@dataclass(frozen=True)
class Scale:
    orders_per_wave: int
    orchestrations_per_wave: int
    """Of each pattern."""
    rounds: int
    """How many times each fault is injected."""
    llm_outage_seconds: float
    postgres_partition_seconds: float
    settle_seconds: float
    """Pause after a fault is cleared, before the next."""
    breaker_open_seconds: float
    """`BATON_BREAKER_OPEN_SECONDS`: after an LLM fault the suite waits this long too, so that the
    next one meets calls, not the breaker the last one opened."""
    approval_within_seconds: float
    """A person approves each order within this long after it starts."""
    deadline_seconds: float
    """How long, after the last fault, every run has to finish."""


FULL = Scale(
    orders_per_wave=12,
    orchestrations_per_wave=1,
    rounds=2,
    llm_outage_seconds=60,
    postgres_partition_seconds=30,
    settle_seconds=10,
    breaker_open_seconds=30,
    approval_within_seconds=90,
    deadline_seconds=600,
)
SHORT = Scale(
    orders_per_wave=2,
    orchestrations_per_wave=1,
    rounds=1,
    llm_outage_seconds=5,
    postgres_partition_seconds=5,
    settle_seconds=2,
    breaker_open_seconds=3,
    approval_within_seconds=10,
    deadline_seconds=300,
)


@dataclass(frozen=True)
class Completion:
    """The attempt of an activity that its history records as completed, and the error type
    the attempt before it failed with, if one did."""

    attempt: int
    previous_error: str | None


@dataclass
class Fault:
    kind: str
    started: float
    cleared: float = 0.0
    detail: str = ""
    recovery_seconds: float | None = None
    """From the fault's end to the first step or tool that started afterwards and finished."""
    finished_meanwhile: int = 0
    """Steps and tool calls that finished while the fault lasted."""


@dataclass
class Report:
    orders: int = 0
    orchestrations: Counter[str] = field(default_factory=Counter)
    completed: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    unfinished: list[str] = field(default_factory=list)
    left_over: dict[str, int] = field(default_factory=dict)
    """Processes that ended with inputs left unconsumed (an approval delivered twice)."""
    faults: list[Fault] = field(default_factory=list)
    executions: int = 0
    re_executions: Counter[str] = field(default_factory=Counter)
    """Executions that ran again after an earlier attempt, by cause."""
    finished_twice: list[str] = field(default_factory=list)
    """Executions that ran again after an attempt that finished, with no cause: defects."""
    payloads: int = 0
    stored_by_reference: int = 0
    """Payloads kept in the app database, by reference, when the run ended."""
    unreadable: list[str] = field(default_factory=list)
    audit_entries: int = 0
    audit_problem: str | None = None
    llm_faulted_calls: Counter[str] = field(default_factory=Counter)
    """LLM calls the server received while each of its faults lasted."""
    worker_exits: Counter[str] = field(default_factory=Counter)
    """Workers that died, by queue and exit status (-9: SIGKILL, by the suite or the kernel)."""
    user_errors: Counter[str] = field(default_factory=Counter)
    """What callers saw while faults lasted: refused starts and events, by fault and error."""
    not_injected: dict[str, str] = field(default_factory=dict)
    """Faults this machine cannot inject, and why."""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (
            self.failed
            or self.unfinished
            or self.left_over
            or self.finished_twice
            or self.unreadable
            or self.audit_problem
        )

    def markdown(self) -> str:
        lines = [
            f"- runs: {self.orders} orders (each {work.STEPS_PER_ORDER} steps, with fan-out, fan-in, a person's approval and "
            f"a sub-process) and {sum(self.orchestrations.values())} orchestrations "
            f"({', '.join(f'{n} {p}' for p, n in sorted(self.orchestrations.items()))}), in {self.seconds:.0f} s",
            f"- completed: {self.completed}; failed: {len(self.failed)}; lost or unfinished: "
            f"{len(self.unfinished)}; ended with inputs left over (an event delivered twice): "
            f"{len(self.left_over)}",
            f"- step and tool executions: {self.executions}; ran again: "
            + (", ".join(f"{n} ({cause})" for cause, n in self.re_executions.items()) or "none")
            + f"; finished and ran again without cause: {len(self.finished_twice)}",
            *(f"  - {what}" for what in self.finished_twice[:10]),
            f"- payloads decoded from every history: {self.payloads} ({self.stored_by_reference} stored by "
            f"reference); unreadable: {len(self.unreadable)}",
            f"- audit chain: {self.audit_entries} entries, "
            + ("verifies" if self.audit_problem is None else f"BROKEN: {self.audit_problem}"),
            "",
            "| fault | injected | detail | finished while it lasted | recovery after it (s) |",
            "|---|---:|---|---:|---:|",
        ]
        for kind in dict.fromkeys(f.kind for f in self.faults):
            of_kind = [f for f in self.faults if f.kind == kind]
            recoveries = [
                f"{f.recovery_seconds:.1f}" if f.recovery_seconds is not None else "-" for f in of_kind
            ]
            lines.append(
                f"| {kind} | {len(of_kind)} | {of_kind[0].detail} | "
                f"{', '.join(str(f.finished_meanwhile) for f in of_kind)} | {', '.join(recoveries)} |"
            )
        lines += [f"- not injected: {kind} ({why})" for kind, why in self.not_injected.items()]
        lines += ["", "LLM calls that met each LLM fault (each tried again until answered):"]
        lines += [f"- {kind}: {n}" for kind, n in self.llm_faulted_calls.items()]
        lines += ["", "Workers that died (each started again 2 s later, as a controller would):"]
        lines += [f"- {what}: {n}" for what, n in sorted(self.worker_exits.items())]
        lines += ["", "What callers saw while faults lasted (the suite retried each until it was accepted):"]
        lines += [f"- {what}: {n}" for what, n in sorted(self.user_errors.items())] or ["- nothing"]
        return "\n".join(lines)


class ChaosSuite:
    def __init__(self, scale: Scale, root: Path, admin_dsn: str) -> None:
        self.scale = scale
        self.root = root
        self.ledger = Ledger(admin_dsn, f"baton_chaos_{uuid.uuid4().hex[:10]}")
        self.postgres = Postgres()
        self.redis = Redis()
        self.temporal = Temporal(root)
        self.llm = ChaosLlm()
        self.report = Report()
        self.runs: dict[str, Any] = {}
        self.current_fault: Fault | None = None
        self.random = random.Random(7)
        self.settings = BatonSettings(
            data_dir=root / ".baton",
            temporal_address=self.temporal.address,
            database_url=self.postgres.url,
            redis_url=self.redis.url,
            workflows_queue=QUEUES["workflows"],
            steps_queue=QUEUES["steps"],
            llm_queue=QUEUES["llm"],
            compliance_queue=QUEUES["compliance"],
            step_modules=work.STEP_MODULES,
            tool_modules=work.TOOL_MODULES,
            openai_base_url=self.llm.url,
            openai_api_key="sk-chaos",
        )
        self.workers = Workers(
            root,
            worker_environment(
                {
                    "BATON_TEMPORAL_ADDRESS": self.temporal.address,
                    "BATON_DATA_DIR": str(self.settings.data_dir),
                    "BATON_DATABASE_URL": self.postgres.url,
                    "BATON_REDIS_URL": self.redis.url,
                    "BATON_WORKFLOWS_QUEUE": QUEUES["workflows"],
                    "BATON_STEPS_QUEUE": QUEUES["steps"],
                    "BATON_LLM_QUEUE": QUEUES["llm"],
                    "BATON_COMPLIANCE_QUEUE": QUEUES["compliance"],
                    "BATON_STEP_MODULES": work.STEP_MODULES,
                    "BATON_TOOL_MODULES": work.TOOL_MODULES,
                    "BATON_OPENAI_BASE_URL": self.llm.url,
                    "BATON_OPENAI_API_KEY": "sk-chaos",
                    "BATON_BREAKER_OPEN_SECONDS": str(scale.breaker_open_seconds),
                    LEDGER_ENV: self.ledger.dsn,
                }
            ),
        )
        self.process = work.order_process().build(work.STEP_MODULES)
        self.client: BatonClient
        self.began = time.time()

    # The stack

    async def __aenter__(self) -> ChaosSuite:
        await self.ledger.create()
        self.llm.__enter__()
        await asyncio.to_thread(self.postgres.start)
        engine = engine_from_settings(self.settings)
        await upgrade(engine)
        await engine.dispose()
        self.redis.start()
        self.temporal.start()
        for name, count in WORKERS_PER_QUEUE.items():
            self.workers.keep(QUEUES[name], count)
        self.workers.keep(work.HEAVY_QUEUE, 1)
        self.supervisor = asyncio.create_task(self.workers.supervise())
        self.client = await BatonClient.connect(self.settings, actor="chaos-suite")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.supervisor.cancel()
        await self.client.close()
        self.workers.stop_all()
        self.temporal.stop()
        self.redis.kill()
        self.postgres.stop()
        self.llm.__exit__()
        await self.ledger.drop()

    # The work

    async def _retried(self, what: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """`call` until it succeeds, as a caller that must not lose its request would; every
        refusal is counted under the fault that lasted at the time."""
        while True:
            try:
                return await call()
            except (Unavailable, RPCError, RPCTimeoutOrCancelledError) as e:
                fault = self.current_fault.kind if self.current_fault else "no fault"
                summary = (str(e).splitlines() or [""])[0][:100]
                self.report.user_errors[f"{what} during {fault}: {type(e).__name__}: {summary}"] += 1
                await asyncio.sleep(0.5)

    async def start_wave(self, wave: int) -> list[asyncio.Task[None]]:
        approvals = []
        for i in range(self.scale.orders_per_wave):
            key = f"w{wave}-{i}"
            order = work.Order(id=key, manifest=work.manifest(key) if i % 3 == 0 else "")
            subject = f"customer-{key}" if i % 2 == 0 else None
            run = await self._retried(
                "order start",
                lambda order=order, key=key, subject=subject: self.client.start_process(
                    self.process, "Start", order, key=key, if_exists="return",
                    data_subject=subject, processing=work.PROCESSING if subject else None,
                ),
            )  # fmt: skip
            self.runs[run.id] = run
            self.report.orders += 1
            delay = self.random.uniform(1, self.scale.approval_within_seconds)
            approvals.append(asyncio.create_task(self._approve(run, delay)))
        for i in range(self.scale.orchestrations_per_wave):
            for pattern in PATTERNS:
                key = f"w{wave}-{i}"
                pending = self._orchestration(pattern, f"Move order {key} along")
                run = await self._retried(
                    f"{pattern} start", lambda p=pending, k=key: p.start(key=k, if_exists="return")
                )
                self.runs[run.id] = run
                self.report.orchestrations[pattern] += 1
        return approvals

    def _orchestration(self, pattern: str, task: str) -> Any:
        clerk, checker = work.agent("Clerk"), work.agent("Checker")
        if pattern == "sequential":
            return self.client.run_sequential(task, [clerk, checker])
        if pattern == "concurrent":
            return self.client.run_concurrent(task, [clerk, checker])
        if pattern == "group-chat":
            return self.client.run_group_chat(task, [clerk, checker], max_rounds=3)
        if pattern == "handoff":
            front, back = work.agent("Front", tools=False), work.agent("Back", tools=False)
            return self.client.run_handoff(task, [front, back], routes={"Front": ["Back"], "Back": []})
        planner = AgentSpec(name="Planner", instructions="You are the project manager.")
        return self.client.run_magentic(task, [clerk, checker], manager=planner)

    async def _approve(self, run: Any, delay: float) -> None:
        await asyncio.sleep(delay)
        # One ID for every try: an approval whose answer was lost is not delivered twice.
        approve = functools.partial(
            run.send_event, "Approved", work.Approval(by="ops"), request_id=f"approve-{run.id}"
        )
        await self._retried("approval", approve)

    # The faults

    def faults(self) -> list[tuple[str, str, Callable[[], Awaitable[None]]]]:
        s = self.scale
        kinds: list[tuple[str, str, Callable[[], Awaitable[None]]]] = [
            (f"{name} workers killed", f"SIGKILL all {WORKERS_PER_QUEUE[name]}, started again after 2 s",
             lambda name=name: self._kill_workers(QUEUES[name]))
            for name in QUEUES
        ]  # fmt: skip
        kinds += [
            ("Temporal server restarted", "SIGTERM, started again on the same SQLite file after 2 s",
             self._restart_temporal),
            ("PostgreSQL restarted", "pg_ctl restart -m fast", self._restart_postgres),
            ("PostgreSQL unreachable", f"every server process stopped (SIGSTOP) for "
             f"{s.postgres_partition_seconds:.0f} s", self._partition_postgres),
            ("Redis restarted empty", "SIGKILL, started empty after 2 s", self._restart_redis),
            ("LLM 500s", f"every call answered 500 for {s.llm_outage_seconds:.0f} s",
             lambda: self._llm_outage(Reply.fail(500))),
            ("LLM 429s", f"every call answered 429 with Retry-After: 2 for {s.llm_outage_seconds:.0f} s",
             lambda: self._llm_outage(Reply.fail(429, Retry_After="2"))),
            ("LLM hangs", f"every call hangs past its 3 s timeout for {s.llm_outage_seconds:.0f} s",
             lambda: self._llm_outage(Reply.hang(30))),
            ("LLM streams cut", f"every stream cut before its end for {s.llm_outage_seconds:.0f} s",
             self._cut_streams),
        ]  # fmt: skip
        if (reason := MemoryCage.supported()) is None:
            kinds.append(
                (
                    "worker out of memory",
                    "the heavy queue's worker replaced by one in a 400 MB memory cgroup; "
                    "its step needs 256 MB more",
                    self._out_of_memory,
                )
            )
        else:
            self.report.not_injected["worker out of memory"] = reason
        return kinds

    async def _kill_workers(self, queue: str) -> None:
        self.workers.kill(queue)
        await asyncio.sleep(self.workers.restart_after)

    async def _restart_temporal(self) -> None:
        await asyncio.to_thread(self.temporal.stop)
        await asyncio.sleep(2)
        self.temporal.start()  # from this thread: the server dies with the thread that started it

    async def _restart_postgres(self) -> None:
        await asyncio.to_thread(self.postgres.restart)

    async def _partition_postgres(self) -> None:
        self.postgres.freeze()
        try:
            await asyncio.sleep(self.scale.postgres_partition_seconds)
        finally:
            self.postgres.thaw()

    async def _restart_redis(self) -> None:
        self.redis.kill()
        await asyncio.sleep(2)
        self.redis.start()

    async def _llm_outage(self, reply: Reply) -> None:
        self.llm.outage(self.scale.llm_outage_seconds, reply)
        await asyncio.sleep(self.scale.llm_outage_seconds)

    async def _cut_streams(self) -> None:
        self.llm.cut_streams_for(self.scale.llm_outage_seconds)
        await asyncio.sleep(self.scale.llm_outage_seconds)

    async def _out_of_memory(self) -> None:
        """The heavy queue's only worker is one in a memory cgroup too small for its step; once
        the kernel killed it, the usual worker comes back and the step runs there."""
        cage = MemoryCage(f"baton-chaos-{uuid.uuid4().hex[:8]}", 400 * 1024 * 1024)
        wanted = self.workers.wanted[work.HEAVY_QUEUE]
        self.workers.wanted[work.HEAVY_QUEUE] = 0
        try:
            self.workers.kill(work.HEAVY_QUEUE)
            caged = self.workers.start(work.HEAVY_QUEUE, cage)
            deadline = time.monotonic() + 60
            while caged.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            if caged.poll() is None:
                caged.kill()
                raise AssertionError("the worker in the memory cgroup took no heavy step in 60 s")
            self.workers.killed.add(caged.pid)
            self.workers.exits.append((f"{work.HEAVY_QUEUE}, in the cgroup", caged.returncode))
        finally:
            self.workers.wanted[work.HEAVY_QUEUE] = wanted
            cage.remove()

    # The run

    def say(self, what: str) -> None:
        print(f"[{time.time() - self.began:5.0f} s] {what}", file=sys.stderr, flush=True)

    async def run(self) -> Report:
        began = self.began = time.time()
        approvals = await self.start_wave(0)
        self.say(f"{len(self.runs)} runs started; faults begin")
        await asyncio.sleep(self.scale.settle_seconds)
        wave = 0
        for _ in range(self.scale.rounds):
            for kind, detail, inject in self.faults():
                wave += 1
                fault = Fault(kind, time.time(), detail=detail)
                self.current_fault = fault
                starting = asyncio.create_task(self.start_wave(wave))
                self.say(f"{kind}: {detail}")
                await inject()
                fault.cleared = time.time()
                self.say(f"{kind}: cleared")
                approvals += await starting
                self.current_fault = None
                self.report.faults.append(fault)
                breaker = self.scale.breaker_open_seconds if kind.startswith("LLM") else 0
                await asyncio.sleep(self.scale.settle_seconds + breaker)
        await asyncio.gather(*approvals)
        self.say(f"faults over; waiting for {len(self.runs)} runs to finish")
        await self._wait_for_runs(time.monotonic() + self.scale.deadline_seconds)
        self.report.seconds = time.time() - began
        self.say(f"{self.report.completed} runs completed; counting executions and reading every history")
        for fault in self.report.faults:
            if fault.kind.startswith("LLM"):
                calls = sum(fault.started <= r.at <= fault.cleared for r in self.llm.calls())
                self.report.llm_faulted_calls[fault.kind] += calls
        self.report.worker_exits = Counter(
            f"{queue} (status {status})" for queue, status in self.workers.exits
        )
        await self._count(await self.ledger.executions())
        await self._check_payloads()
        await self._count_stored_payloads()
        await self._check_audit()
        return self.report

    async def _wait_for_runs(self, deadline: float) -> None:
        pending = dict(self.runs)
        while pending and time.monotonic() < deadline:
            for run_id, run in list(pending.items()):
                try:
                    status = (await run.handle.describe()).status
                except RPCError:
                    continue
                if status == WorkflowExecutionStatus.COMPLETED:
                    result = await run.result()
                    if getattr(result, "unconsumed", None):  # an event delivered twice, say
                        self.report.left_over[run_id] = len(result.unconsumed)
                    self.report.completed += 1
                    del pending[run_id]
                elif status != WorkflowExecutionStatus.RUNNING:
                    self.report.failed[run_id] = status.name if status else "unknown"
                    del pending[run_id]
            await asyncio.sleep(1)
        self.report.unfinished = sorted(pending)

    async def _count(self, executions: list[Execution]) -> None:
        """Re-executions by cause, against what each history says finished."""
        self.report.executions = len(executions)
        completed_attempts = await self._completed_attempts({(e.workflow_id, e.run_id) for e in executions})
        by_activity: dict[tuple[str, str], list[Execution]] = {}
        for e in executions:
            by_activity.setdefault((e.run_id, e.activity_id), []).append(e)

        def during(kind: str, at: datetime) -> bool:
            # From 5 s before (a completion still on its way when the server went down) to 10 s
            # after (one retried until the server was back, then timed out).
            return any(
                f.started - 5 <= at.timestamp() <= f.cleared + 10
                for f in self.report.faults
                if f.kind.startswith(kind)
            )

        for (run_id, activity_id), attempts in by_activity.items():
            recorded = completed_attempts.get((run_id, activity_id))
            for earlier in attempts[:-1]:
                finished = earlier.finished_at
                if earlier.pid in self.workers.killed:
                    cause = "its worker was killed"
                elif finished is None:
                    cause = "the earlier attempt failed before its side effect"
                elif during("Temporal", finished):
                    cause = "it finished while the Temporal server was down"
                elif recorded and recorded.previous_error and during("PostgreSQL", finished):
                    # Its result could not be sealed with the subject's key, or stored by reference.
                    cause = (
                        f"it failed after its side effect, the app database down ({recorded.previous_error})"
                    )
                else:
                    cause = ""
                    self.report.finished_twice.append(
                        f"{earlier.name} in {earlier.workflow_id}: attempt {earlier.attempt} (pid "
                        f"{earlier.pid}) finished at {finished.timestamp() - self.began:.1f} s"
                    )
                if cause:
                    self.report.re_executions[cause] += 1
            if recorded is not None and attempts[-1].attempt > recorded.attempt:
                self.report.finished_twice.append(
                    f"{attempts[-1].name} in {attempts[-1].workflow_id}: attempt {attempts[-1].attempt} "
                    f"ran after attempt {recorded.attempt} completed"
                )
        finishes = sorted(
            (e.started_at.timestamp(), e.finished_at.timestamp()) for e in executions if e.finished_at
        )
        for fault in self.report.faults:
            fault.finished_meanwhile = sum(fault.started <= end <= fault.cleared for _, end in finishes)
            after = [end for start, end in finishes if start >= fault.cleared]
            fault.recovery_seconds = min(after) - fault.cleared if after else None

    async def _completed_attempts(self, runs: set[tuple[str, str]]) -> dict[tuple[str, str], Completion]:
        completions: dict[tuple[str, str], Completion] = {}
        converter = self.client.temporal.data_converter
        for workflow_id, run_id in runs:
            history = await self.client.temporal.get_workflow_handle(
                workflow_id, run_id=run_id
            ).fetch_history()
            scheduled: dict[int, str] = {}
            started: dict[int, Any] = {}
            for event in history.events:
                if event.HasField("activity_task_scheduled_event_attributes"):
                    scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_id
                elif event.HasField("activity_task_started_event_attributes"):
                    started[event.activity_task_started_event_attributes.scheduled_event_id] = (
                        event.activity_task_started_event_attributes
                    )
                elif event.HasField("activity_task_completed_event_attributes"):
                    attributes = started[event.activity_task_completed_event_attributes.scheduled_event_id]
                    error = None
                    if attributes.HasField("last_failure"):
                        failure = await converter.decode_failure(attributes.last_failure)
                        if isinstance(failure, TemporalTimeout):  # the worker went silent
                            error = f"{failure.type.name.lower()} timeout" if failure.type else "timeout"
                        else:
                            error = getattr(failure, "type", None) or type(failure).__name__
                    completions[(run_id, scheduled[attributes.scheduled_event_id])] = Completion(
                        attributes.attempt, error
                    )
        return completions

    async def _check_payloads(self) -> None:
        client: Client = self.client.temporal
        async for execution in client.list_workflows():
            handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
            history = await handle.fetch_history()
            for event in history.events:
                for payload in _payloads(event):
                    self.report.payloads += 1
                    try:
                        await client.data_converter.decode([payload])
                    except Exception as e:  # every unreadable payload is reported, whatever the reason
                        self.report.unreadable.append(f"{execution.id} event {event.event_id}: {e}")

    async def _count_stored_payloads(self) -> None:
        engine = engine_from_settings(self.settings)
        try:
            async with engine.connect() as conn:
                self.report.stored_by_reference = await conn.scalar(
                    text("SELECT count(*) FROM stored_payloads")
                )
        finally:
            await engine.dispose()

    async def _check_audit(self) -> None:
        verification = await self.client.audit_trail.verify(await self.client.audit_anchors())
        self.report.audit_entries = verification.entries
        self.report.audit_problem = verification.broken.problem if verification.broken else None


def _payloads(message: Any) -> list[Payload]:
    """Every payload inside a history event."""
    found = []
    for descriptor, value in message.ListFields():
        if descriptor.message_type is None:
            continue
        if descriptor.message_type.GetOptions().map_entry:
            items = list(value.values())
        else:
            items = list(value) if descriptor.is_repeated else [value]
        for item in items:
            if isinstance(item, Payload):
                found.append(item)
            elif hasattr(item, "ListFields"):
                found.extend(_payloads(item))
    return found


async def run_chaos(scale: Scale, admin_dsn: str, root: Path | None = None) -> Report:
    with tempfile.TemporaryDirectory(prefix="baton-chaos-") as scratch:
        async with ChaosSuite(scale, root or Path(scratch), admin_dsn) as suite:
            return await suite.run()

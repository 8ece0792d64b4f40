"""The chaos suite's short version (`make chaos` runs the full one): every fault once, each while
work runs, and afterwards nothing lost, nothing finished run twice, every payload readable."""

from __future__ import annotations

import shutil

import pytest

from tests.chaos.stack import Postgres
from tests.chaos.suite import SHORT, run_chaos
from tests.chaos.work import STEPS_PER_ORDER
from tests.conftest import POSTGRES_ADMIN_DSN

FAULTS = {
    "workflows workers killed",
    "steps workers killed",
    "llm workers killed",
    "compliance workers killed",
    "Temporal server restarted",
    "PostgreSQL restarted",
    "PostgreSQL unreachable",
    "Redis restarted empty",
    "LLM 500s",
    "LLM 429s",
    "LLM hangs",
    "LLM streams cut",
    "worker out of memory",
}


@pytest.mark.timeout(900)  # about 2 minutes; its own deadline for the runs is 5
@pytest.mark.skipif(
    not (shutil.which("redis-server") and Postgres.programs()),
    reason="the chaos suite runs its own Redis and PostgreSQL: it needs redis-server, initdb and pg_ctl",
)
async def test_every_fault_while_work_runs_loses_nothing() -> None:
    report = await run_chaos(SHORT, POSTGRES_ADMIN_DSN)
    print(report.markdown())

    # Every fault, but one that needs root (or a delegated cgroup) where the machine has none.
    assert {f.kind for f in report.faults} | set(report.not_injected) == FAULTS
    assert report.stored_by_reference > 0
    assert set(report.orchestrations) == {"sequential", "concurrent", "group-chat", "handoff", "magentic"}
    assert report.completed == report.orders + sum(report.orchestrations.values())
    assert not report.failed and not report.unfinished and not report.left_over
    assert report.executions >= report.orders * STEPS_PER_ORDER and not report.finished_twice
    assert report.payloads > report.completed and not report.unreadable
    assert report.audit_entries > report.completed and report.audit_problem is None
    # The faults reached the work: the kernel killed the worker in the memory cgroup, and the
    # LLM server's faults met calls, which were tried again.
    if "worker out of memory" not in report.not_injected:
        assert report.worker_exits["chaos-heavy, in the cgroup (status -9)"] == 1
    # (A later LLM fault may meet the breaker an earlier one opened, rather than calls.)
    assert report.llm_faulted_calls["LLM 500s"] > 0, report.llm_faulted_calls
    # Callers were told to try again later, in Baton's or Temporal's words, never a driver's.
    seen = {what.split(": ")[1] for what in report.user_errors}
    assert seen <= {
        "Unavailable",
        "RPCError",
        "RPCTimeoutOrCancelledError",
        "WorkflowUpdateRPCTimeoutOrCancelledError",
    }, report.user_errors

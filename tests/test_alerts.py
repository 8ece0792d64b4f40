"""Alerts of suspicious activity: the rules over an audit window, and delivery to a real HTTP
receiver that fails the first attempts (retried, never lost, sent once per window)."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY
from pydantic import SecretStr
from temporalio.client import Client

from baton.compliance import (
    AuditEntry,
    AuditLog,
    AuditRecord,
    Rule,
    Thresholds,
    WatchInput,
    WitnessInput,
    evaluate,
    watch_workflow_id,
    witness_workflow_id,
)
from baton.persistence.db import create_engine
from baton.persistence.schema import Schema
from baton.settings import BatonSettings
from baton.workers.worker import build_workers
from baton.workflows.compliance import AuditWatchWorkflow, AuditWitnessWorkflow

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def record(actor: str, action: str, seq: int, **detail: Any) -> AuditRecord:
    return AuditRecord(
        actor=actor, action=action, detail=detail, seq=seq + 1, at=NOW, prev_hash="0" * 64, hash=""
    )


def test_the_rules_count_over_the_window() -> None:
    thresholds = Thresholds(denied=3, decoded_payloads=100, erasures=2, key_operations=1)
    entries = [
        *(record("mallory", "payload.decode.refused", n, status=403) for n in range(4)),
        *(record("alice", "payload.decode.refused", n, status=401) for n in range(3)),  # at the threshold
        record("bob", "payload.decode.refused", 9, status=422),  # bad input, not a denial
        record("carol", "payload.decode", 10, payloads=60),
        record("carol", "payload.decode", 11, payloads=41),
        *(record("dpo", "subject.erase", 20 + n) for n in range(3)),
        record("ops", "key.rotate", 30),
    ]
    alerts = {(a.rule, a.principal): a for a in evaluate(entries, thresholds, NOW)}
    assert set(alerts) == {
        (Rule.DENIED_ACCESS, "mallory"),
        (Rule.BULK_DECODE, "carol"),
        (Rule.ERASURES, None),
    }
    assert alerts[(Rule.BULK_DECODE, "carol")].count == 101
    assert (
        alerts[(Rule.DENIED_ACCESS, "mallory")].message
        == "mallory was refused 4 times in 300 s (more than 3)"
    )


class Receiver:
    """An alert webhook that answers 503 to its first `failures` posts."""

    def __init__(self, failures: int) -> None:
        self.attempts: list[dict[str, Any]] = []
        self.accepted: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                receiver.attempts.append(body)
                status = 503 if len(receiver.attempts) <= failures else 200
                if status == 200:
                    receiver.accepted.append(body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/alerts"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(failures=2)
    yield r
    r.close()


@pytest.fixture
def alert_settings(settings: BatonSettings, receiver: Receiver) -> BatonSettings:
    return settings.model_copy(
        update={
            "compliance_queue": f"test-compliance-{uuid.uuid4().hex[:8]}",
            "alert_webhook_url": SecretStr(receiver.url),
            "alert_denied": 3,
        }
    )


async def until(check: Any, what: str) -> None:
    for _ in range(400):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


async def test_a_burst_of_denials_is_alerted_once_and_delivered_despite_failures(
    baton_temporal: Client, alert_settings: BatonSettings, receiver: Receiver
) -> None:
    settings = alert_settings
    engine = create_engine(settings.resolved_database_url)
    log = AuditLog(Schema(engine))
    before = REGISTRY.get_sample_value("baton_alerts_total", {"rule": "denied_access_burst"}) or 0
    [worker] = build_workers(baton_temporal, settings, [settings.compliance_queue])
    try:
        async with worker:
            watch = await baton_temporal.start_workflow(
                AuditWatchWorkflow.run,
                WatchInput(every_seconds=0.3),
                id=watch_workflow_id(settings.compliance_queue),
                task_queue=settings.compliance_queue,
            )
            await log.append(
                *(
                    AuditEntry(actor="mallory", action="payload.decode.refused", detail={"status": 403})
                    for _ in range(4)
                )
            )
            await until(lambda: receiver.accepted, "the alert was delivered")
            await asyncio.sleep(1.5)  # several more scans of the same window
            await watch.terminate()
        assert len(receiver.attempts) == 3  # two refused by the receiver, retried
        [alert] = receiver.accepted
        assert (
            alert["rule"] == "denied_access_burst" and alert["principal"] == "mallory" and alert["count"] == 4
        )
        after = REGISTRY.get_sample_value("baton_alerts_total", {"rule": "denied_access_burst"})
        assert after == before + 1
        assert [r.action for r in await log.tail(1)] == ["alert.denied_access_burst"]
    finally:
        await engine.dispose()


async def test_a_broken_audit_chain_is_alerted_by_the_witness(
    baton_temporal: Client, alert_settings: BatonSettings, receiver: Receiver
) -> None:
    settings = alert_settings
    engine = create_engine(settings.resolved_database_url)
    log = AuditLog(Schema(engine))
    await log.append(*(AuditEntry(actor=f"user-{n}", action="run.start") for n in range(3)))
    async with engine.begin() as conn:
        await conn.execute(sa.text("DROP TRIGGER audit_events_no_update"))
        await conn.execute(sa.text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2"))
    [worker] = build_workers(baton_temporal, settings, [settings.compliance_queue])
    try:
        async with worker:
            witness = await baton_temporal.start_workflow(
                AuditWitnessWorkflow.run,
                WitnessInput(every_seconds=3600),
                id=witness_workflow_id(settings.compliance_queue),
                task_queue=settings.compliance_queue,
            )
            await until(lambda: receiver.accepted, "the alert was delivered")
            await witness.terminate()
        [alert] = receiver.accepted
        assert alert["rule"] == "audit_verification_failed"
        assert "entry 2 was changed" in alert["message"]
    finally:
        await engine.dispose()

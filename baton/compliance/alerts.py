"""Suspicious activity, read from the audit trail, and alerts that are never lost.

The `AuditWatch` workflow (one per deployment, started by the worker that serves the compliance
queue) looks at the audit trail every minute and raises an alert when, within the last
`BATON_ALERT_WINDOW_SECONDS`, one principal was refused more than `BATON_ALERT_DENIED` times,
decoded more than `BATON_ALERT_DECODED_PAYLOADS` payloads, or when erasures or key operations
exceeded theirs; the audit witness raises one when the chain does not verify, and a
data-subject request when 5 days are left of its month and again once it is overdue. An alert is posted
(JSON) to `BATON_ALERT_WEBHOOK_URL` by an activity that Temporal retries until the receiver
takes it, counted in `baton_alerts_total`, and audited. The same rule and principal alert again
only once a window has passed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field

from .audit import AuditRecord

AUDIT_WATCH_WORKFLOW = "AuditWatch"
SCAN_AUDIT_ACTIVITY = "baton.scan_audit"
SEND_ALERT_ACTIVITY = "baton.send_alert"
SCAN_EVERY = timedelta(minutes=1)
SCANS_PER_RUN = 500
"""Scans before the watch continues as new."""


def watch_workflow_id(compliance_queue: str) -> str:
    return f"{compliance_queue}-audit-watch"


class Rule(StrEnum):
    DENIED_ACCESS = "denied_access_burst"
    BULK_DECODE = "bulk_decode"
    ERASURES = "erasure_rate"
    KEY_OPERATIONS = "key_operations"
    AUDIT_BROKEN = "audit_verification_failed"
    REQUEST_DEADLINE_NEAR = "subject_request_deadline_near"
    REQUEST_OVERDUE = "subject_request_overdue"


class Thresholds(BaseModel):
    """How much of each thing, within `window_seconds`, is suspicious (more than the number)."""

    window_seconds: int = Field(300, ge=10)
    denied: int = Field(10, ge=1, description="Refusals (401/403) of one principal.")
    decoded_payloads: int = Field(1000, ge=1, description="Payloads one principal decrypted or exported.")
    erasures: int = Field(50, ge=1, description="Subjects erased, by anyone.")
    key_operations: int = Field(5, ge=1, description="Key rotations, by anyone.")


class Alert(BaseModel):
    rule: Rule
    principal: str | None = Field(None, description="Who it is about; None for deployment-wide rules.")
    count: int
    threshold: int
    window_seconds: int
    at: datetime
    message: str

    @property
    def key(self) -> str:
        """What a repeat of this alert shares with it."""
        return f"{self.rule.value}:{self.principal or '*'}"


class WatchInput(BaseModel):
    every_seconds: float = Field(SCAN_EVERY.total_seconds(), gt=0)
    alerted: dict[str, datetime] = Field(
        default_factory=dict,
        description="When each rule and principal last alerted (carried across continue-as-new).",
    )


class ScanResult(BaseModel):
    alerts: list[Alert] = Field(default_factory=list)
    entries: int = Field(0, description="Audit entries within the window.")


def evaluate(entries: Iterable[AuditRecord], thresholds: Thresholds, now: datetime) -> list[Alert]:
    """The alerts that the audit entries of one window call for."""
    denied: Counter[str] = Counter()
    decoded: Counter[str] = Counter()
    erasures = key_operations = 0
    for entry in entries:
        if entry.action.endswith(".refused") and entry.detail.get("status") in (401, 403):
            denied[entry.actor or entry.ip or "(unknown)"] += 1
        elif entry.action == "payload.decode":
            decoded[entry.actor] += int(entry.detail.get("payloads", 1))
        elif entry.action == "subject_request.completed" and entry.detail.get("kind") == "access":
            decoded[entry.actor] += 1
        elif entry.action in ("subject.erase", "subject_request.erase"):
            erasures += 1
        elif entry.action.startswith("key."):
            key_operations += 1
    window = thresholds.window_seconds
    counts: list[tuple[Rule, str | None, int, int, str]] = [
        *(
            (Rule.DENIED_ACCESS, who, n, thresholds.denied, f"{who} was refused {n} times")
            for who, n in denied.items()
        ),
        *(
            (
                Rule.BULK_DECODE,
                who,
                n,
                thresholds.decoded_payloads,
                f"{who} decrypted or exported {n} payloads",
            )
            for who, n in decoded.items()
        ),
        (Rule.ERASURES, None, erasures, thresholds.erasures, f"{erasures} erasures"),
        (
            Rule.KEY_OPERATIONS,
            None,
            key_operations,
            thresholds.key_operations,
            f"{key_operations} key operations",
        ),
    ]
    return [
        Alert(
            rule=rule,
            principal=who,
            count=n,
            threshold=threshold,
            window_seconds=window,
            at=now,
            message=f"{what} in {window} s (more than {threshold})",
        )
        for rule, who, n, threshold, what in counts
        if n > threshold
    ]

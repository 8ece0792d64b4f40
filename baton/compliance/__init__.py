"""Compliance: the audit trail, and the retention work of the `baton-compliance` queue.

- `AuditLog`: the append-only, hash-chained audit trail (`baton.compliance.audit`).
- The stored-payload sweep and the audit witness: workflows of the compliance queue, started
  by the worker that serves it (`baton.compliance.payload_sweep`, `baton.compliance.witness`).
"""

from .audit import AuditAnchor, AuditEntry, AuditLog, AuditRecord, AuditVerification, BrokenLink
from .payload_sweep import (
    STORED_PAYLOAD_SWEEP_WORKFLOW,
    SWEEP_EVERY,
    SWEEP_RETRY,
    SWEEP_STORED_PAYLOADS_ACTIVITY,
    SWEEP_TIMEOUT,
    SweepResult,
    sweep_schedule_id,
)
from .witness import (
    ANCHOR_AUDIT_CHAIN_ACTIVITY,
    ANCHOR_EVERY,
    ANCHOR_TIMEOUT,
    ANCHORS_PER_RUN,
    AUDIT_WITNESS_WORKFLOW,
    AnchorResult,
    WitnessInput,
    witness_workflow_id,
)

__all__ = [
    "ANCHORS_PER_RUN",
    "ANCHOR_AUDIT_CHAIN_ACTIVITY",
    "ANCHOR_EVERY",
    "ANCHOR_TIMEOUT",
    "AUDIT_WITNESS_WORKFLOW",
    "STORED_PAYLOAD_SWEEP_WORKFLOW",
    "SWEEP_EVERY",
    "SWEEP_RETRY",
    "SWEEP_STORED_PAYLOADS_ACTIVITY",
    "SWEEP_TIMEOUT",
    "AnchorResult",
    "AuditAnchor",
    "AuditEntry",
    "AuditLog",
    "AuditRecord",
    "AuditVerification",
    "BrokenLink",
    "SweepResult",
    "WitnessInput",
    "sweep_schedule_id",
    "witness_workflow_id",
]

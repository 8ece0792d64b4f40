"""Compliance: the audit trail, and the retention work of the `baton-compliance` queue.

- `AuditLog`: the append-only, hash-chained audit trail (`baton.compliance.audit`).
- `Processing`, `ProcessingRecords`: why a subject's data is processed, and until when it is kept;
  `baton.compliance.retention`: the per-subject retention workflow and the daily sweep.
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
from .processing import DEFAULT_RETENTION_DAYS, LegalBasis, Processing
from .records import Deletion, ProcessingRecord, ProcessingRecords, RetentionState
from .retention import (
    BATON_RETENTION_DUE,
    DELETE_DUE_ACTIVITY,
    HOLD_ACTIVITY,
    RELEASE_ACTIVITY,
    RETENTION_CYCLES_PER_RUN,
    RETENTION_STATE_ACTIVITY,
    RETENTION_SWEEP_EVERY,
    RETENTION_SWEEP_WORKFLOW,
    SHIFT_ACTIVITY,
    SUBJECT_RETENTION_WORKFLOW,
    SWEEP_DUE_ACTIVITY,
    SWEEP_GRACE,
    DeleteDue,
    HoldRequest,
    ReleaseRequest,
    RetentionInput,
    ShiftRequest,
    SweepReport,
    retention_sweep_schedule_id,
    retention_workflow_id,
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
    "BATON_RETENTION_DUE",
    "DEFAULT_RETENTION_DAYS",
    "DELETE_DUE_ACTIVITY",
    "HOLD_ACTIVITY",
    "RELEASE_ACTIVITY",
    "RETENTION_CYCLES_PER_RUN",
    "RETENTION_STATE_ACTIVITY",
    "RETENTION_SWEEP_EVERY",
    "RETENTION_SWEEP_WORKFLOW",
    "SHIFT_ACTIVITY",
    "STORED_PAYLOAD_SWEEP_WORKFLOW",
    "SUBJECT_RETENTION_WORKFLOW",
    "SWEEP_DUE_ACTIVITY",
    "SWEEP_EVERY",
    "SWEEP_GRACE",
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
    "DeleteDue",
    "Deletion",
    "HoldRequest",
    "LegalBasis",
    "Processing",
    "ProcessingRecord",
    "ProcessingRecords",
    "ReleaseRequest",
    "RetentionInput",
    "RetentionState",
    "ShiftRequest",
    "SweepReport",
    "SweepResult",
    "WitnessInput",
    "retention_sweep_schedule_id",
    "retention_workflow_id",
    "sweep_schedule_id",
    "witness_workflow_id",
]

"""The audit witness: the audit chain's head, recorded every day in a Temporal history.

An administrator of the app database can drop its triggers and rewrite the audit table with a
consistent chain; they cannot rewrite a Temporal history. The `AuditWitness` workflow (one per
deployment, started by the worker that serves the compliance queue) wakes once a day on a
durable timer, verifies the entries added since its last anchor, and keeps the new head as an
anchor. `baton audit verify` checks the whole table against every anchor it holds.

It is a workflow that runs for ever (continuing as new, carrying its anchors), not a schedule:
a closed run's history is deleted after the namespace's retention period, and the anchors must
outlive that.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field

from .audit import AuditAnchor, BrokenLink

AUDIT_WITNESS_WORKFLOW = "AuditWitness"
ANCHOR_AUDIT_CHAIN_ACTIVITY = "baton.anchor_audit_chain"
ANCHOR_EVERY = timedelta(days=1)
ANCHOR_TIMEOUT = timedelta(hours=1)
ANCHORS_PER_RUN = 30
"""Days between continue-as-new: a month of history per run."""


def witness_workflow_id(compliance_queue: str) -> str:
    """One witness per deployment (per compliance queue)."""
    return f"{compliance_queue}-audit-witness"


class WitnessInput(BaseModel):
    anchors: list[AuditAnchor] = Field(default_factory=list, description="Anchors of earlier runs.")
    every_seconds: float = Field(ANCHOR_EVERY.total_seconds(), gt=0)


class AnchorResult(BaseModel):
    """The chain's head now, or where it is broken (then nothing is anchored)."""

    head: AuditAnchor
    broken: BrokenLink | None = None

"""Retention by durable timer: one `SubjectRetention` workflow per data subject.

Why one per subject, not one per record: ten million records of a million subjects would be ten
million timers and workflows; per subject it is a million, each sleeping until its earliest due
record (docs/SCALING.md has the arithmetic). A new record signals the subject's workflow, starting
it if it is not running (signal-with-start); the workflow reads the subject's retention state,
sleeps until the earliest due date or until something changes, deletes what is due, and ends
when nothing of the subject is left. Holds, releases, extensions and shortenings are updates:
audited, and visible in the UI as the workflow's current details and its `BatonRetentionDue`
search attribute.

A daily `RetentionSweep` schedule is the safety net: it deletes records past due whose
workflow did not (terminated, or its worker away), and reports what it found.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, Field, model_validator
from temporalio.common import SearchAttributeKey

from .records import Deletion

SUBJECT_RETENTION_WORKFLOW = "SubjectRetention"
RETENTION_SWEEP_WORKFLOW = "RetentionSweep"
RETENTION_STATE_ACTIVITY = "baton.retention_state"
DELETE_DUE_ACTIVITY = "baton.delete_due_records"
HOLD_ACTIVITY = "baton.retention_hold"
RELEASE_ACTIVITY = "baton.retention_release"
SHIFT_ACTIVITY = "baton.retention_shift"
SWEEP_DUE_ACTIVITY = "baton.sweep_due_records"
RETENTION_SWEEP_EVERY = timedelta(days=1)
RETENTION_CYCLES_PER_RUN = 100
"""Wake-ups (deletions, changes) before the workflow continues as new."""
SWEEP_GRACE = timedelta(hours=1)
"""The sweep leaves records due less than this long ago to their own workflow."""
BATON_RETENTION_DUE = SearchAttributeKey.for_datetime("BatonRetentionDue")
"""When a subject's next record is due (unset while held or when none is left)."""


RETENTION_SUMMARY = "retention of one data subject's data (records, payloads, key)"
"""What the Temporal UI shows for every retention workflow (the subject is never named)."""


def retention_workflow_id(ref: str) -> str:
    """The subject's retention workflow, by its keyed reference (no personal data in the ID)."""
    return f"retention-{ref}"


def retention_sweep_schedule_id(compliance_queue: str) -> str:
    return f"{compliance_queue}-retention-sweep"


class RetentionInput(BaseModel):
    ref: str = Field(min_length=1, max_length=64)
    search_attributes: bool = Field(
        True, description="Off where they cannot be registered (time-skipping tests)."
    )
    deleted: Deletion = Field(default_factory=Deletion, description="Carried across continue-as-new.")


class DeleteDue(BaseModel):
    ref: str
    now: datetime = Field(
        description="The workflow's time: deletion follows Temporal's clock, not the worker's."
    )


HOLD_REASON_LENGTH = 400


class HoldRequest(BaseModel):
    reason_note: str = Field(
        "", max_length=32, description="The reason, filed as a subject note (`file_note`)."
    )
    reason: str | None = Field(
        None,
        max_length=HOLD_REASON_LENGTH,
        description="How holds were asked for before notes: the reason's text. Accepted so that the "
        "histories of those holds still replay; a new hold names its note.",
    )
    actor: str = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _names_its_reason(self) -> HoldRequest:
        if not self.reason_note and self.reason is None:
            raise ValueError("a hold names the note that holds its reason")
        return self


class ReleaseRequest(BaseModel):
    actor: str = Field(min_length=1, max_length=200)


class ShiftRequest(BaseModel):
    days: int = Field(ge=1, le=36500, description="How many days later (extend) or sooner (shorten).")
    actor: str = Field(min_length=1, max_length=200)


class SweepReport(BaseModel):
    subjects: int = Field(
        0, description="Subjects with records past due that their workflow had not deleted."
    )
    deleted: Deletion = Field(default_factory=Deletion)

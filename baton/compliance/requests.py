"""Data-subject requests (GDPR art. 15 access, art. 17 erasure): each a `DataSubjectRequest`
workflow with the one-month deadline on a durable timer.

The work runs as activities that retry until they succeed (the database or Temporal may be away
for a while); meanwhile the deadline's timers fire: an alert when 5 days are left, another once
it has passed. Every step is audited. A request names the subject by its keyed reference only,
so neither its workflow ID nor its history holds the identifier.

- Access: an export bundle (JSON) of the subject's processing records, the audit entries about
  them and their runs, and each run's inputs and result read back from Temporal and decrypted;
  sealed with the keyring, written to the exports folder, its SHA-256 in the audit entry.
  `baton privacy export PATH` opens it.
- Erasure: every processing record, the runs' stored payloads, the subject's key; then every
  payload of the subject's runs is read back to check that none decrypts any more.
- Rectification: the subject's identifier was wrong. Their records, legal hold, keys and runs
  are filed under the corrected one (merged with what it already has), the note is audited, and
  their retention continues under it. Temporal's histories are immutable: what a run was given
  stays as it was given, readable and erasable as the corrected subject's.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from temporalio.common import RetryPolicy

from baton.security.keys import Keyring

from .records import Deletion, Rectification

DATA_SUBJECT_REQUEST_WORKFLOW = "DataSubjectRequest"
ACCESS_ACTIVITY = "baton.subject_access"
ERASURE_ACTIVITY = "baton.subject_erasure"
RECTIFICATION_ACTIVITY = "baton.subject_rectification"
REQUEST_AUDIT_ACTIVITY = "baton.subject_request_audit"
DEADLINE = timedelta(days=30)
"""GDPR art. 12(3): one month."""
WARN_BEFORE = timedelta(days=5)
REQUEST_ACTIVITY_TIMEOUT = timedelta(minutes=30)
REQUEST_RETRY = RetryPolicy(initial_interval=timedelta(minutes=1), maximum_interval=timedelta(hours=1))
"""The work retries, up to hourly, for as long as it takes; the deadline's alerts say when that is long."""
EXPORT_CONTEXT = b"baton-subject-export|"
NOTE_LENGTH = 2000


class RequestKind(StrEnum):
    ACCESS = "access"
    ERASURE = "erasure"
    RECTIFICATION = "rectification"


class SubjectRequest(BaseModel):
    kind: RequestKind
    subject_ref: str = Field(min_length=1, max_length=64)
    actor: str = Field(min_length=1, max_length=200, description="Who files it (the DPO, a service).")
    request_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    also_refs: list[str] = Field(
        default_factory=list,
        max_length=4,
        description="Erasure: the same identifier's references as older versions keyed it.",
    )
    corrected_ref: str | None = Field(
        None, max_length=64, description="Rectification: the reference of the corrected identifier."
    )
    note_id: str | None = Field(
        None,
        max_length=32,
        description="Rectification: what was wrong and why, filed as a subject note (audited, masked).",
    )


class RequestResult(BaseModel):
    kind: RequestKind
    export_path: str | None = Field(None, description="Access: where the sealed bundle is.")
    export_sha256: str | None = None
    runs: int = Field(0, description="Runs of the subject the request covered.")
    deleted: Deletion | None = Field(None, description="Erasure: what went.")
    payloads_checked: int = Field(0, description="Erasure: history payloads read back after the erasure.")
    payloads_readable: int = Field(0, description="Erasure: of those, how many still decrypted (must be 0).")
    rectified: Rectification | None = Field(None, description="Rectification: what moved.")


class RequestStep(BaseModel):
    """An audited moment of a request: received, a deadline alert, completed."""

    request: SubjectRequest
    step: str
    detail: dict[str, object] = Field(default_factory=dict)


def open_export(path: Path, keyring: Keyring) -> dict[str, Any]:
    """The bundle of an access request's export file (named after its request)."""
    return json.loads(keyring.open(path.read_bytes(), EXPORT_CONTEXT + path.stem.encode()))


def request_workflow_id(kind: RequestKind, request_id: str) -> str:
    return f"dsr-{kind.value}-{request_id}"


def deadline_of(received: datetime) -> datetime:
    return received + DEADLINE

"""Compliance (the Compliance policy: DataProtectionOfficer or Admin) and the audit trail (the
Audit policy: Auditor or Admin).

A data subject's identifier is personal data: it travels only in request bodies (POST), never in
a URL, which proxies and access logs keep. Keys and erasure by key stay CLI-only (`baton keys`,
`baton privacy erase`); an erasure request (`kind: erasure`) is the API's way to erase.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi import Path as InPath
from pydantic import BaseModel, Field
from temporalio.client import WorkflowExecutionStatus

from baton.api.deps import Allowed, baton_for
from baton.api.problems import documented
from baton.compliance import (
    AuditRecord,
    AuditVerification,
    Hold,
    Processing,
    ProcessingRecord,
    RequestKind,
    RequestResult,
    RetentionState,
    open_export,
)
from baton.errors import Conflict
from baton.security.jwt import Identity
from baton.security.policies import Policy
from baton.starter.api_models import DataSubject
from baton.starter.client import BatonClient
from baton.temporal import encryption_codec

router = APIRouter(prefix="/v1/compliance", tags=["compliance"], responses=documented(401, 403, 429))
audit_router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=documented(401, 403, 429))
Officer = Annotated[Identity, Depends(Allowed(Policy.COMPLIANCE))]
Auditor = Annotated[Identity, Depends(Allowed(Policy.AUDIT))]
RETENTION_UPDATE_SECONDS = 30.0
REQUEST_ID = r"^dsr-(access|erasure|rectification)-[0-9a-f]{32}$"


class SubjectQuery(BaseModel):
    data_subject: DataSubject


class RecordRequest(BaseModel):
    data_subject: DataSubject
    processing: Processing


class SubjectRecords(BaseModel):
    records: list[ProcessingRecord]
    retention: RetentionState
    hold: Hold | None = None


class HoldPlacement(BaseModel):
    data_subject: DataSubject
    reason: str = Field(min_length=1, max_length=400, description="Kept in the database, never in a history.")


class SubjectRequestStart(BaseModel):
    kind: RequestKind
    data_subject: DataSubject
    corrected: DataSubject | None = Field(None, description="Rectification: the right identifier.")
    note: str = Field("", max_length=2000, description="Rectification: what was wrong and why.")


class SubjectRequestStatus(BaseModel):
    request_id: str = Field(description="The request's workflow ID.")
    status: str = Field(description="running, completed, failed, …")
    result: RequestResult | None = None


@router.post("/records", status_code=201)
async def record_processing(request: Request, record: RecordRequest, who: Officer) -> ProcessingRecord:
    """Record processing of a subject's data done outside Baton's runs; its retention follows."""
    return await baton_for(request, who).record_processing(record.data_subject, record.processing)


@router.post("/records/search")
async def subject_records(request: Request, query: SubjectQuery, who: Officer) -> SubjectRecords:
    """A subject's processing records, retention and legal hold."""
    baton: BatonClient = request.app.state.baton
    ref = baton.subjects.ref(query.data_subject)
    return SubjectRecords(
        records=await baton.records.of_subject(ref),
        retention=await baton.records.state(ref),
        hold=await baton.records.hold_of(ref),
    )


@router.post("/holds", responses=documented(404, 422, 503))
async def place_hold(request: Request, hold: HoldPlacement, who: Officer) -> RetentionState:
    """Place a legal hold: nothing of the subject is deleted, for retention or on request, until released."""
    return await _retention_change(baton_for(request, who), hold.data_subject, "hold", hold.reason)


@router.post("/holds/release", responses=documented(404, 503))
async def release_hold(request: Request, query: SubjectQuery, who: Officer) -> RetentionState:
    """Lift the legal hold: what fell due meanwhile is deleted."""
    return await _retention_change(baton_for(request, who), query.data_subject, "release")


async def _retention_change(baton: BatonClient, subject: str, change: str, *args: str) -> RetentionState:
    """The change, made by the subject's retention workflow (an update): 503 when no compliance
    worker takes it in time, rather than a caller left waiting for as long as none runs."""
    retention = baton.retention(subject)
    try:
        async with asyncio.timeout(RETENTION_UPDATE_SECONDS):
            result: RetentionState = await getattr(retention, change)(*args)
    except TimeoutError:
        raise HTTPException(
            503,
            f"no compliance worker took the change within {RETENTION_UPDATE_SECONDS:.0f} s: check that "
            "workers serve the compliance queue, then try again (placing a hold twice is harmless)",
        ) from None
    return result


@router.post("/requests", status_code=202)
async def file_request(request: Request, start: SubjectRequestStart, who: Officer) -> SubjectRequestStatus:
    """File an access, erasure or rectification request: a workflow answered within a month."""
    handle = await baton_for(request, who).subject_request(
        start.kind, start.data_subject, corrected=start.corrected, note=start.note
    )
    return SubjectRequestStatus(request_id=handle.id, status="running")


@router.get("/requests/{request_id}", responses=documented(404))
async def request_status(
    request: Request, request_id: Annotated[str, InPath(pattern=REQUEST_ID)], who: Officer
) -> SubjectRequestStatus:
    """Where a request is, and its result once answered."""
    handle = request.app.state.baton.temporal.get_workflow_handle(request_id, result_type=RequestResult)
    described = await handle.describe()
    status = described.status.name.lower() if described.status else "unknown"
    result = await handle.result() if described.status == WorkflowExecutionStatus.COMPLETED else None
    return SubjectRequestStatus(request_id=request_id, status=status, result=result)


@router.get("/requests/{request_id}/export", responses=documented(404, 409))
async def access_export(
    request: Request, request_id: Annotated[str, InPath(pattern=REQUEST_ID)], who: Officer
) -> dict[str, Any]:
    """An answered access request's bundle, opened: the subject's records, audit entries and runs."""
    baton: BatonClient = request.app.state.baton
    status = await request_status(request, request_id, who)
    if status.result is None or status.result.export_path is None:
        raise Conflict(f"{request_id} has no export: it is not an answered access request")
    keyring = encryption_codec(baton.temporal.data_converter).keys.keyring
    bundle = open_export(Path(status.result.export_path), keyring)
    await baton_for(request, who).audit("subject_request.download", request_id, {"runs": status.result.runs})
    return bundle


@audit_router.get("/entries")
async def audit_entries(
    request: Request,
    who: Auditor,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    action: Annotated[str | None, Query(max_length=50)] = None,
) -> list[AuditRecord]:
    """The latest entries (of `action`, e.g. `api.denied`), oldest first."""
    baton: BatonClient = request.app.state.baton
    return await baton.audit_trail.tail(limit, action)


@audit_router.post("/verify", responses=documented(503))
async def verify(request: Request, who: Auditor) -> AuditVerification:
    """Check every entry's hash, the chain's links and the witness's anchors (503 when the
    witness cannot be asked: a chain checked alone would pass a consistent rewrite)."""
    baton: BatonClient = request.app.state.baton
    try:
        anchors = await baton.audit_anchors()
    except Exception as e:  # any failure to ask is the same answer: no anchors, no verdict
        raise HTTPException(503, f"the audit witness did not answer ({type(e).__name__})") from None
    return await baton.audit_trail.verify(anchors)

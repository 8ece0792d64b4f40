"""Processing records and retention: what is kept of whom, why, and until when.

One record per data subject and purpose (purpose, legal basis and data category): each run
started for that purpose adds itself to the record's runs and pushes its due date to
`retention_days` after that run. When a record is due, its runs' stored payloads and the record
go; when none of the subject's records is left, so does the subject's key, which crypto-shreds
whatever Temporal still holds of them. A legal hold stops all of it until released. Every change
is audited, in the transaction that makes it.

The subject is known here only by its keyed reference (`SubjectKeys.ref`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from baton.errors import Conflict, InvalidRequest, NotFound

# A module, not its names: `subjects` audits through this package, which is being imported.
from baton.persistence import subjects as subject_keys
from baton.persistence.db import as_utc
from baton.persistence.models import (
    ProcessingRecordRow,
    RetentionHoldRow,
    StoredPayloadRow,
    SubjectKeyRow,
    SubjectNoteRow,
)
from baton.persistence.schema import Schema
from baton.security.codec import root_run_id

from .audit import AuditEntry, AuditLog

if TYPE_CHECKING:
    from baton.persistence.subjects import SubjectKeys
from .processing import LegalBasis, Processing


class ProcessingRecord(BaseModel):
    id: str
    subject_ref: str
    purpose: str
    legal_basis: LegalBasis
    data_category: str
    recorded_at: datetime
    last_processed_at: datetime
    retention_days: int
    due_at: datetime
    runs: list[str]


class RetentionState(BaseModel):
    """A subject's retention at a glance: what the retention workflow shows and waits on."""

    records: int = Field(ge=0)
    next_due: datetime | None = Field(None, description="The earliest due record's date; None when none.")
    held: bool = False


class Hold(BaseModel):
    """A legal hold, as the database keeps it (its reason is never in a workflow's history)."""

    reason: str
    placed_at: datetime
    placed_by: str


class Deletion(BaseModel):
    """What one retention deletion removed."""

    records: int = 0
    stored_payloads: int = 0
    key_erased: bool = False
    postponed: int = Field(0, description="Records due whose runs were still running: kept a while longer.")

    def __add__(self, other: Deletion) -> Deletion:
        return Deletion(
            records=self.records + other.records,
            stored_payloads=self.stored_payloads + other.stored_payloads,
            key_erased=self.key_erased or other.key_erased,
            postponed=self.postponed + other.postponed,
        )


_DELETE_CHUNK = 500
_RUN_ID = re.compile(r'^[^"\\\x00-\x1f]{1,1000}$')
RUNNING_RECHECK = timedelta(days=1)
"""How long a record is postponed when a run it covers is still running when it falls due."""


class LegalHold(Conflict):
    """A legal hold keeps everything of the subject: an erasure is refused until it is released."""


class Rectification(BaseModel):
    """What a rectification re-filed under the corrected identifier."""

    records: int = 0
    keys: int = 0


class ProcessingRecords:
    """Processing records and legal holds in the app database."""

    def __init__(self, schema: Schema, subjects: SubjectKeys) -> None:
        self._schema = schema
        self._sessions = async_sessionmaker(schema.engine, expire_on_commit=False)
        self.subjects = subjects
        self._audit = AuditLog(schema)

    async def record(
        self, subject: str, processing: Processing, run: str | None, actor: str
    ) -> ProcessingRecord:
        """Record that `run` (or something outside Baton's runs, when None) processes `subject`'s
        data for `processing`; audited. A run's ID is later matched in visibility queries: one
        with a quote, a backslash or a control character is refused."""
        if run is not None and not _RUN_ID.match(run):
            raise InvalidRequest(
                f"{run!r} is not a run's workflow ID (1-1000 characters, no quotes or backslashes)"
            )
        await self._schema.ready()
        ref = self.subjects.ref(subject)
        for attempt in range(2):
            try:
                async with self._sessions() as session, session.begin():
                    row = await self._upsert(session, ref, processing, run)
                    await self._audit.append_within(
                        session,
                        _entry(actor, "processing.record", ref, {"purpose": processing.purpose, "run": run}),
                    )
                return _record(row)
            except IntegrityError:
                if attempt == 1:  # two first runs of one purpose at once: the second updates
                    raise
        raise AssertionError("unreachable")

    async def _upsert(
        self, session: AsyncSession, ref: str, processing: Processing, run: str | None
    ) -> ProcessingRecordRow:
        now = datetime.now(UTC)
        due = now + timedelta(days=processing.retention_days)
        row = (
            await session.scalars(
                select(ProcessingRecordRow)
                .where(
                    ProcessingRecordRow.subject_ref == ref,
                    ProcessingRecordRow.purpose == processing.purpose,
                    ProcessingRecordRow.legal_basis == processing.legal_basis.value,
                    ProcessingRecordRow.data_category == processing.data_category,
                )
                .with_for_update()
            )
        ).first()
        if row is None:
            row = ProcessingRecordRow(
                id=str(uuid.uuid4()),
                subject_ref=ref,
                purpose=processing.purpose,
                legal_basis=processing.legal_basis.value,
                data_category=processing.data_category,
                recorded_at=now,
                last_processed_at=now,
                retention_days=processing.retention_days,
                due_at=due,
                runs=[run] if run else [],
            )
            session.add(row)
        else:
            if run and run not in row.runs:
                row.runs = [*row.runs, run]
            row.last_processed_at, row.retention_days = now, processing.retention_days
            row.due_at = max(as_utc(row.due_at), due)
        await session.flush()
        return row

    async def of_subject(self, ref: str) -> list[ProcessingRecord]:
        await self._schema.ready()
        async with self._sessions() as session:
            rows = await session.scalars(
                select(ProcessingRecordRow)
                .where(ProcessingRecordRow.subject_ref == ref)
                .order_by(ProcessingRecordRow.due_at)
            )
            return [_record(row) for row in rows]

    async def state(self, ref: str) -> RetentionState:
        await self._schema.ready()
        async with self._sessions() as session:
            count, next_due = (
                await session.execute(
                    select(func.count(), func.min(ProcessingRecordRow.due_at)).where(
                        ProcessingRecordRow.subject_ref == ref
                    )
                )
            ).one()
            held = await session.get(RetentionHoldRow, ref) is not None
        return RetentionState(
            records=count, next_due=as_utc(next_due) if next_due is not None else None, held=held
        )

    async def hold_of(self, ref: str) -> Hold | None:
        """The subject's legal hold, if one stands."""
        await self._schema.ready()
        async with self._sessions() as session:
            row = await session.get(RetentionHoldRow, ref)
        if row is None:
            return None
        return Hold(reason=row.reason, placed_at=as_utc(row.placed_at), placed_by=row.placed_by)

    async def runs_due(self, ref: str, now: datetime) -> set[str]:
        """The runs covered by the subject's records due at `now` (to ask which still run)."""
        await self._schema.ready()
        async with self._sessions() as session:
            rows = await session.scalars(
                select(ProcessingRecordRow.runs).where(
                    ProcessingRecordRow.subject_ref == ref, ProcessingRecordRow.due_at <= now
                )
            )
            return {run for runs in rows for run in runs}

    async def delete_due(self, ref: str, now: datetime, actor: str, running: Iterable[str] = ()) -> Deletion:
        """Delete the subject's records due at `now` with their runs' stored payloads, and the
        subject's key once no record is left; nothing while a legal hold stands.

        A record covering one of the `running` runs is not deleted under that run: it is due
        again `RUNNING_RECHECK` later (audited as postponed)."""
        return await self._delete(ref, now, actor, "retention.delete", set(running))

    async def delete_all(self, ref: str, actor: str, also: Iterable[str] = ()) -> Deletion:
        """Delete every record of the subject, their runs' stored payloads, their notes and the
        subject's keys, with those under the references in `also` (the same identifier, as
        keyed by older versions); an erasure request. `LegalHold` while a hold stands, decided
        in the same transaction."""
        deleted = await self._delete(ref, None, actor, "subject_request.erase", set())
        if not deleted.key_erased or also:  # a subject with keys and no record left
            erased = await self.subjects.erase_ref(ref, actor, also=also)
            deleted.key_erased = deleted.key_erased or erased is subject_keys.Erasure.ERASED
        return deleted

    async def _delete(
        self, ref: str, due_by: datetime | None, actor: str, action: str, running: set[str]
    ) -> Deletion:
        await self._schema.ready()
        async with self._sessions() as session, session.begin():
            hold = await session.get(RetentionHoldRow, ref)
            if hold is not None:
                if due_by is not None:  # retention waits for the release
                    return Deletion()
                raise LegalHold("the subject is on legal hold: erasure is refused until the hold is released")
            if due_by is None:  # an erasure: what was written about them goes too
                await session.execute(delete(SubjectNoteRow).where(SubjectNoteRow.subject_ref == ref))
            query = select(ProcessingRecordRow).where(ProcessingRecordRow.subject_ref == ref)
            if due_by is not None:
                query = query.where(ProcessingRecordRow.due_at <= due_by)
            rows = (await session.scalars(query)).all()
            busy = [row for row in rows if running.intersection(row.runs)]
            due = [row for row in rows if row not in busy]
            if busy:
                await self._postpone(session, ref, busy, actor, due_by or datetime.now(UTC))
            if not due:
                return Deletion(postponed=len(busy))
            runs = {run for row in due for run in row.runs}
            payloads = await self._delete_stored_payloads(session, ref, runs)
            await session.execute(
                delete(ProcessingRecordRow).where(ProcessingRecordRow.id.in_([r.id for r in due]))
            )
            left = await session.scalar(select(func.count()).where(ProcessingRecordRow.subject_ref == ref))
            if left == 0:
                await session.execute(delete(SubjectNoteRow).where(SubjectNoteRow.subject_ref == ref))
            deleted = Deletion(records=len(due), stored_payloads=payloads, postponed=len(busy))
            detail = {"purposes": sorted({r.purpose for r in due}), "runs": len(runs), **deleted.model_dump()}
            await self._audit.append_within(session, _entry(actor, action, ref, detail))
        if left == 0:
            # No purpose left to keep anything of theirs: what Temporal holds is shredded too.
            deleted.key_erased = await self.subjects.erase_ref(ref, actor) is subject_keys.Erasure.ERASED
        return deleted

    async def _postpone(
        self, session: AsyncSession, ref: str, rows: list[ProcessingRecordRow], actor: str, now: datetime
    ) -> None:
        """A run still going keeps its data: deleting it now would break the run (and its key
        would go with the last record). The record is due again once the run had time to end."""
        for row in rows:
            row.due_at = now + RUNNING_RECHECK
        detail: dict[str, object] = {
            "purposes": sorted({r.purpose for r in rows}),
            "until": (now + RUNNING_RECHECK).isoformat(),
        }
        await self._audit.append_within(session, _entry(actor, "retention.postpone", ref, detail))

    @staticmethod
    async def _delete_stored_payloads(session: AsyncSession, ref: str, runs: set[str]) -> int:
        """Delete the out-of-band payloads of `runs` (and of their sub-processes): those sealed
        with one of the subject's keys whose run's root is one of them, compared exactly (no
        pattern: run keys are case-sensitive and may hold `_`), a chunk at a time."""
        keys = select(SubjectKeyRow.key_id).where(SubjectKeyRow.ref == ref)
        stored = await session.execute(
            select(StoredPayloadRow.digest, StoredPayloadRow.workflow_id).where(
                StoredPayloadRow.key_id.in_(keys)
            )
        )
        digests = [digest for digest, run in stored if run is not None and root_run_id(run) in runs]
        for start in range(0, len(digests), _DELETE_CHUNK):
            chunk = digests[start : start + _DELETE_CHUNK]
            await session.execute(delete(StoredPayloadRow).where(StoredPayloadRow.digest.in_(chunk)))
        return len(digests)

    async def file_note(self, ref: str, text: str) -> str:
        """Keep `text` about the subject (a hold's reason, a rectification's note: it may name
        people) in the database; a workflow passes the returned ID, never the text, so the text
        goes with the subject's data and is not left behind in a history sealed with the master key."""
        await self._schema.ready()
        note = SubjectNoteRow(id=uuid.uuid4().hex, subject_ref=ref, text=text, created_at=datetime.now(UTC))
        async with self._sessions() as session, session.begin():
            session.add(note)
        return note.id

    @staticmethod
    async def _note(session: AsyncSession, ref: str, note_id: str | None) -> str:
        if note_id is None:
            return ""
        note = await session.get(SubjectNoteRow, note_id)
        if note is None or note.subject_ref != ref:
            raise NotFound(f"note {note_id} of this subject is not in the database (erased since?)")
        return note.text

    async def rectify(self, old_ref: str, new_ref: str, note_id: str | None, actor: str) -> Rectification:
        """File everything of the subject `old_ref` under `new_ref`, their corrected identifier:
        records (merged with the new one's of the same purpose), legal hold, notes, keys and
        runs; the rectification note (`file_note`) is audited. What Temporal's histories hold is
        not changed."""
        await self._schema.ready()
        async with self._sessions() as session, session.begin():
            note = await self._note(session, old_ref, note_id)
            await session.execute(
                update(SubjectNoteRow)
                .where(SubjectNoteRow.subject_ref == old_ref)
                .values(subject_ref=new_ref)
            )
            moved = 0
            for row in (
                await session.scalars(
                    select(ProcessingRecordRow).where(ProcessingRecordRow.subject_ref == old_ref)
                )
            ).all():
                twin = (
                    await session.scalars(
                        select(ProcessingRecordRow).where(
                            ProcessingRecordRow.subject_ref == new_ref,
                            ProcessingRecordRow.purpose == row.purpose,
                            ProcessingRecordRow.legal_basis == row.legal_basis,
                            ProcessingRecordRow.data_category == row.data_category,
                        )
                    )
                ).first()
                if twin is None:
                    row.subject_ref = new_ref
                else:
                    twin.runs = [*twin.runs, *(r for r in row.runs if r not in twin.runs)]
                    twin.due_at = max(as_utc(twin.due_at), as_utc(row.due_at))
                    await session.delete(row)
                moved += 1
            hold = await session.get(RetentionHoldRow, old_ref)
            if hold is not None:
                await session.delete(hold)
                if await session.get(RetentionHoldRow, new_ref) is None:
                    await session.flush()
                    session.add(
                        RetentionHoldRow(
                            subject_ref=new_ref,
                            reason=hold.reason,
                            placed_at=hold.placed_at,
                            placed_by=hold.placed_by,
                        )
                    )
            keys = await self.subjects.move_within(session, old_ref, new_ref)
            result = Rectification(records=moved, keys=keys)
            detail = {"from": f"subject:{old_ref}", "note": note, **result.model_dump()}
            await self._audit.append_within(
                session, _entry(actor, "subject_request.rectify", new_ref, detail)
            )
        return result

    async def hold(self, ref: str, reason_note: str, actor: str) -> RetentionState:
        """Place a legal hold, for the reason filed as the note `reason_note` (`file_note`):
        nothing of the subject is deleted for retention until released."""
        await self._schema.ready()
        async with self._sessions() as session, session.begin():
            reason = await self._note(session, ref, reason_note)
            hold = await session.get(RetentionHoldRow, ref)
            if hold is None:
                session.add(
                    RetentionHoldRow(
                        subject_ref=ref, reason=reason, placed_at=datetime.now(UTC), placed_by=actor
                    )
                )
            else:
                hold.reason = reason
            await self._audit.append_within(session, _entry(actor, "retention.hold", ref, {"reason": reason}))
        return await self.state(ref)

    async def release(self, ref: str, actor: str) -> RetentionState:
        await self._schema.ready()
        async with self._sessions() as session, session.begin():
            await session.execute(delete(RetentionHoldRow).where(RetentionHoldRow.subject_ref == ref))
            await self._audit.append_within(session, _entry(actor, "retention.release", ref, {}))
        return await self.state(ref)

    async def shift(self, ref: str, days: int, actor: str) -> RetentionState:
        """Move every record's due date by `days` (later when positive, sooner when negative)."""
        await self._schema.ready()
        async with self._sessions() as session, session.begin():
            rows = (
                await session.scalars(
                    select(ProcessingRecordRow).where(ProcessingRecordRow.subject_ref == ref)
                )
            ).all()
            for row in rows:
                row.due_at = as_utc(row.due_at) + timedelta(days=days)
                row.retention_days = max(1, row.retention_days + days)
            action = "retention.extend" if days > 0 else "retention.shorten"
            await self._audit.append_within(session, _entry(actor, action, ref, {"days": abs(days)}))
        return await self.state(ref)

    async def count_due(self, now: datetime) -> int:
        """Records past their due date and not on hold: the retention backlog (a few are normal
        between the daily sweeps; a growing number is not)."""
        await self._schema.ready()
        async with self._sessions() as session:
            held = select(RetentionHoldRow.subject_ref)
            return int(
                await session.scalar(
                    select(func.count())
                    .select_from(ProcessingRecordRow)
                    .where(ProcessingRecordRow.due_at < now, ProcessingRecordRow.subject_ref.not_in(held))
                )
                or 0
            )

    async def past_due(self, before: datetime, limit: int) -> list[str]:
        """Subjects (references) with a record due before `before` and no legal hold."""
        await self._schema.ready()
        async with self._sessions() as session:
            held = select(RetentionHoldRow.subject_ref)
            refs = await session.scalars(
                select(ProcessingRecordRow.subject_ref)
                .where(ProcessingRecordRow.due_at < before, ProcessingRecordRow.subject_ref.not_in(held))
                .distinct()
                .limit(limit)
            )
            return list(refs)


def _entry(actor: str, action: str, ref: str, detail: dict[str, object]) -> AuditEntry:
    return AuditEntry(actor=actor, action=action, resource=f"subject:{ref}", detail=detail)


def _record(row: ProcessingRecordRow) -> ProcessingRecord:
    return ProcessingRecord(
        id=row.id,
        subject_ref=row.subject_ref,
        purpose=row.purpose,
        legal_basis=LegalBasis(row.legal_basis),
        data_category=row.data_category,
        recorded_at=as_utc(row.recorded_at),
        last_processed_at=as_utc(row.last_processed_at),
        retention_days=row.retention_days,
        due_at=as_utc(row.due_at),
        runs=list(row.runs),
    )

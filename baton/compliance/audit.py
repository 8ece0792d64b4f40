"""The audit trail: append-only, hash-chained, anchored outside the database.

Each entry records who did what to which resource, and when (the seed's AuditService fields:
actor, action, resource, details with personal data masked, time, IP, user agent, correlation
ID). Entries form a chain: entry `seq` stores the SHA-256 of its canonical content, which
includes the hash of entry `seq - 1`. Changing, removing or reordering an entry breaks the chain
at that entry, and `verify` names it.

Three things keep the chain honest:
- `seq` is unique, so two writers (several processes, several machines) can never both append
  entry 42: the loser of a race writes again after the winner. On PostgreSQL writers also queue
  on an advisory lock, so the race does not happen in the first place.
- The database refuses UPDATE and DELETE on the table (triggers, PostgreSQL and SQLite).
- An administrator who drops the triggers and rewrites the whole table consistently is caught
  by the anchors: the `AuditWitness` workflow records the chain's head (seq and hash) in its
  Temporal history every day, and `verify` checks the table against those.

Appends from one process are written together (one transaction for all entries waiting), so
many concurrent callers cost a few transactions, not one each; `append` returns once its entries
are committed.
"""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import json
import os
import socket
import weakref
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import or_, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from baton.persistence.db import as_utc
from baton.persistence.models import AuditEventRow
from baton.persistence.schema import Schema
from baton.security.pii import PiiMasker, default_masker
from baton.telemetry.tracing import current_trace_id

GENESIS = "0" * 64
"""The `prev_hash` of the first entry."""
MAX_BATCH = 500
DEFER_SECONDS = 0.25
"""The longest an `append_soon` waits for another append to share its commit."""
WRITE_ATTEMPTS = 20
_APPEND_LOCK = 0x62617564  # PostgreSQL advisory lock key: writers queue here ("baud")
_VERIFY_BATCH = 5000


class AuditEntry(BaseModel):
    """What happened, as the caller tells it; `AuditLog.append` adds position, time and hashes."""

    actor: str = Field(max_length=200, description="Who: a token's subject, an OS user, a service.")
    action: str = Field(max_length=50, description="What, dotted: `payload.decode`, `subject.erase`.")
    resource: str | None = Field(
        None, max_length=400, description="To what: a run, a key, a subject's reference."
    )
    namespace: str = Field("default", max_length=200, description="The Temporal namespace concerned.")
    workflow_id: str | None = Field(None, max_length=400, description="The run concerned, if one is.")
    detail: dict[str, Any] = Field(default_factory=dict, description="Anything else; its text is PII-masked.")
    ip: str | None = Field(None, max_length=64, description="The caller's address, for requests.")
    user_agent: str | None = Field(None, max_length=400)
    correlation_id: str | None = Field(
        None, max_length=64, description="The trace ID of the span it was written in (tracing on)."
    )


class AuditRecord(AuditEntry):
    """An entry as the chain holds it."""

    seq: int = Field(ge=1, description="Position in the chain, from 1, without gaps.")
    at: datetime
    prev_hash: str = Field(description="The hash of entry `seq - 1` (64 zeros for the first).")
    hash: str = Field(description="SHA-256 of this entry's canonical content, `prev_hash` included.")


class AuditAnchor(BaseModel):
    """The chain's head at one moment, kept outside the database (see `AuditWitness`)."""

    seq: int = Field(ge=0)
    hash: str
    at: datetime


class BrokenLink(BaseModel):
    seq: int = Field(description="The first entry that is wrong (or missing).")
    problem: str


class AuditVerification(BaseModel):
    entries: int = Field(description="Entries checked.")
    anchors: int = Field(description="Anchors the table was checked against.")
    broken: BrokenLink | None = None

    @property
    def ok(self) -> bool:
        return self.broken is None


def local_actor() -> str:
    """The actor of what this process does for no one else: `<OS user>@<host>`."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this UID (a container's arbitrary user)
        user = f"uid-{os.getuid()}"
    return f"{user}@{socket.gethostname()}"[:200]


def entry_hash(record: AuditRecord | dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of an entry: every field but `hash`, keys sorted, compact,
    UTF-8, the time in UTC to the microsecond. This format is the chain's: it never changes."""
    fields = record.model_dump(exclude={"hash"}) if isinstance(record, AuditRecord) else dict(record)
    fields.pop("hash", None)
    fields["at"] = as_utc(fields["at"]).isoformat(timespec="microseconds")
    return hashlib.sha256(_CANONICAL.encode(fields).encode()).hexdigest()


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_STRICT_JSON = json.JSONEncoder(allow_nan=False)  # what PostgreSQL's JSON type takes


@dataclass
class _Queue:
    """Appends waiting on one event loop for its group commit, and the task writing them."""

    waiting: list[tuple[AuditEntry, asyncio.Future[AuditRecord]]] = field(default_factory=list)
    writer: asyncio.Task[None] | None = None
    flush: asyncio.TimerHandle | None = None
    """Starts the writer for deferred appends (`append_soon`) that nothing else wrote first."""


class AuditLog:
    """The audit trail in the app database: `append`, `tail`, `head` and `verify`."""

    def __init__(self, schema: Schema, masker: PiiMasker | None = None) -> None:
        self._schema = schema
        self._sessions = async_sessionmaker(schema.engine, expire_on_commit=False)
        self._masker = masker or default_masker()
        # Per event loop: a writer task belongs to the loop it was made on, and one left behind
        # on a loop that stopped would never write what a later loop queued.
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue] = (
            weakref.WeakKeyDictionary()
        )

    async def append(self, *entries: AuditEntry) -> list[AuditRecord]:
        """Add `entries` to the chain, in order; return them as recorded, once committed."""
        return list(await asyncio.gather(*self._enqueue(entries, defer=False)))

    async def append_soon(self, *entries: AuditEntry) -> list[AuditRecord]:
        """As `append`, but the commit waits up to `DEFER_SECONDS` for other appends to share it:
        for records of what has happened already (an API call's outcome), which no one waits on
        before going on. The next `append` takes them along in its own commit."""
        return list(await asyncio.gather(*self._enqueue(entries, defer=True)))

    def _enqueue(self, entries: Sequence[AuditEntry], defer: bool) -> list[asyncio.Future[AuditRecord]]:
        loop = asyncio.get_running_loop()
        masked = [self._masked(entry) for entry in entries]  # all checked before any is queued
        queue = self._queues.setdefault(loop, _Queue())
        futures = []
        for entry in masked:
            future: asyncio.Future[AuditRecord] = loop.create_future()
            queue.waiting.append((entry, future))
            futures.append(future)
        if not defer:
            self._start_writer(queue, loop)
        elif queue.flush is None:
            queue.flush = loop.call_later(DEFER_SECONDS, self._start_writer, queue, loop)
        return futures

    def _start_writer(self, queue: _Queue, loop: asyncio.AbstractEventLoop) -> None:
        if queue.flush is not None:
            queue.flush.cancel()
            queue.flush = None
        if queue.waiting and (queue.writer is None or queue.writer.done()):
            queue.writer = loop.create_task(self._write_waiting(queue))

    def _masked(self, entry: AuditEntry) -> AuditEntry:
        """The entry as recorded: its detail masked, and refused (ValueError) here, alone, if
        it cannot be: one bad entry must not fail the others written in the same transaction."""
        masked = entry.model_copy(
            update={
                "detail": _mask(entry.detail, self._masker),
                "correlation_id": entry.correlation_id or current_trace_id(),
            }
        )
        try:
            _STRICT_JSON.encode(masked.detail)
        except (TypeError, ValueError) as e:
            raise ValueError(f"audit entry detail is not plain JSON: {e}") from None
        return masked

    async def _write_waiting(self, queue: _Queue) -> None:
        while queue.waiting:
            batch, queue.waiting = queue.waiting[:MAX_BATCH], queue.waiting[MAX_BATCH:]
            try:
                records = await self._write([entry for entry, _ in batch])
            except Exception as e:  # every waiting caller hears of it; the next batch tries again
                for _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                continue
            for (_, future), record in zip(batch, records, strict=True):
                if not future.done():
                    future.set_result(record)

    async def append_within(self, session: AsyncSession, *entries: AuditEntry) -> list[AuditRecord]:
        """Add `entries` in the caller's transaction: they are committed with what they record,
        or not at all. Other appends wait for that commit (the head is locked until then)."""
        return await self._add(session, [self._masked(entry) for entry in entries])

    async def _write(self, entries: Sequence[AuditEntry]) -> list[AuditRecord]:
        await self._schema.ready()
        for attempt in range(WRITE_ATTEMPTS):
            try:
                async with self._sessions() as session, session.begin():
                    records = await self._add(session, entries)
                return records
            except (IntegrityError, OperationalError) as e:
                # Another process appended the same seq first (SQLite has no advisory lock), or
                # SQLite's file was locked: read the new head and try again.
                if isinstance(e, OperationalError) and "locked" not in str(e):
                    raise
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.005 * (attempt + 1))
        raise AssertionError("unreachable")

    async def _add(self, session: AsyncSession, entries: Sequence[AuditEntry]) -> list[AuditRecord]:
        if self._schema.engine.dialect.name == "postgresql":
            await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _APPEND_LOCK})
        head = (
            await session.execute(
                select(AuditEventRow.seq, AuditEventRow.hash).order_by(AuditEventRow.seq.desc()).limit(1)
            )
        ).first()
        records = _chain(entries, head.seq if head else 0, head.hash if head else GENESIS)
        session.add_all(AuditEventRow(**record.model_dump()) for record in records)
        await session.flush()
        return records

    async def head(self) -> AuditAnchor:
        """The last entry's position and hash (seq 0 and the genesis hash when empty)."""
        await self._schema.ready()
        async with self._sessions() as session:
            head = (
                await session.execute(
                    select(AuditEventRow.seq, AuditEventRow.hash).order_by(AuditEventRow.seq.desc()).limit(1)
                )
            ).first()
        return AuditAnchor(
            seq=head.seq if head else 0, hash=head.hash if head else GENESIS, at=datetime.now(UTC)
        )

    async def about(self, resources: Sequence[str]) -> list[AuditRecord]:
        """Every entry whose resource or run is one of `resources`, in chain order."""
        await self._schema.ready()
        query = (
            select(AuditEventRow)
            .where(or_(AuditEventRow.resource.in_(resources), AuditEventRow.workflow_id.in_(resources)))
            .order_by(AuditEventRow.seq)
        )
        async with self._sessions() as session:
            return [_record(row) for row in await session.scalars(query)]

    async def since(self, at: datetime) -> list[AuditRecord]:
        """Every entry written at or after `at`, in chain order."""
        await self._schema.ready()
        query = select(AuditEventRow).where(AuditEventRow.at >= at).order_by(AuditEventRow.seq)
        async with self._sessions() as session:
            return [_record(row) for row in await session.scalars(query)]

    async def tail(self, count: int = 20, action: str | None = None) -> list[AuditRecord]:
        """The last `count` entries (of `action`, if given), oldest first."""
        await self._schema.ready()
        query = select(AuditEventRow).order_by(AuditEventRow.seq.desc()).limit(count)
        if action is not None:
            query = query.where(AuditEventRow.action == action)
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return [_record(row) for row in reversed(rows)]

    async def verify(
        self, anchors: Iterable[AuditAnchor] = (), since: AuditAnchor | None = None
    ) -> AuditVerification:
        """Check every entry (or those after `since`, a trusted anchor) and the `anchors`: the
        first entry changed, missing, out of place, or unlike what an anchor saw is `broken`."""
        await self._schema.ready()
        anchored = {a.seq: a.hash for a in anchors if since is None or a.seq > since.seq}
        expected_seq, prev_hash = (since.seq, since.hash) if since else (0, GENESIS)
        if since is not None and since.seq > 0:
            # Entries before `since` are trusted, not read; the anchored one must still be it.
            anchored_row = await self._row(since.seq)
            if anchored_row is None or {anchored_row["hash"], entry_hash(anchored_row)} != {since.hash}:
                what = "is missing" if anchored_row is None else "was changed"
                problem = (
                    f"entry {since.seq}, anchored in Temporal, {what}: the chain was rewritten up to here"
                )
                return AuditVerification(
                    entries=0, anchors=len(anchored), broken=BrokenLink(seq=since.seq, problem=problem)
                )
        checked = 0
        async for rows in self._rows_after(expected_seq):
            for row in rows:
                expected_seq += 1
                broken = _check(row, expected_seq, prev_hash, anchored)
                if broken is not None:
                    return AuditVerification(entries=checked, anchors=len(anchored), broken=broken)
                prev_hash = row["hash"]
                checked += 1
        beyond = [seq for seq in anchored if seq > expected_seq]
        if beyond:
            return AuditVerification(
                entries=checked,
                anchors=len(anchored),
                broken=BrokenLink(
                    seq=expected_seq + 1,
                    problem=f"entries {expected_seq + 1} to {max(beyond)} are missing: an anchor saw "
                    f"entry {max(beyond)}, the table ends at {expected_seq}",
                ),
            )
        return AuditVerification(entries=checked, anchors=len(anchored))

    async def _row(self, seq: int) -> dict[str, Any] | None:
        """Entry `seq` as a plain dict, if the table has it."""
        async for rows in self._rows_after(seq - 1, limit=1):
            return rows[0] if rows[0]["seq"] == seq else None
        return None

    async def _rows_after(self, seq: int, limit: int = _VERIFY_BATCH) -> AsyncIterator[list[dict[str, Any]]]:
        """Rows in chain order, in batches, as plain dicts (no ORM objects: verification is hot)."""
        columns = [c for c in AuditEventRow.__table__.columns if c.name != "id"]
        names = [c.name for c in columns]
        async with self._schema.engine.connect() as connection:
            while True:
                result = await connection.execute(
                    select(*columns).where(AuditEventRow.seq > seq).order_by(AuditEventRow.seq).limit(limit)
                )
                rows = [dict(zip(names, row, strict=True)) for row in result.all()]
                if not rows:
                    return
                yield rows
                seq = rows[-1]["seq"]


def _chain(entries: Sequence[AuditEntry], seq: int, prev_hash: str) -> list[AuditRecord]:
    at = datetime.now(UTC)
    records = []
    for entry in entries:
        seq += 1
        record = AuditRecord(**entry.model_dump(), seq=seq, at=at, prev_hash=prev_hash, hash="")
        record.hash = prev_hash = entry_hash(record)
        records.append(record)
    return records


def _check(
    row: dict[str, Any], expected_seq: int, prev_hash: str, anchored: dict[int, str]
) -> BrokenLink | None:
    seq = row["seq"]
    if seq != expected_seq:
        missing = (
            f"entry {expected_seq}" if seq == expected_seq + 1 else f"entries {expected_seq} to {seq - 1}"
        )
        return BrokenLink(seq=expected_seq, problem=f"{missing} missing: the chain jumps to entry {seq}")
    if row["prev_hash"] != prev_hash:
        return BrokenLink(
            seq=seq, problem=f"entry {seq} does not follow entry {seq - 1} (its prev_hash differs)"
        )
    if entry_hash(row) != row["hash"]:
        return BrokenLink(seq=seq, problem=f"entry {seq} was changed: its content does not match its hash")
    if seq in anchored and anchored[seq] != row["hash"]:
        return BrokenLink(
            seq=seq,
            problem=f"entry {seq} is not the one anchored in Temporal: the chain was rewritten up to here",
        )
    return None


def _record(row: AuditEventRow) -> AuditRecord:
    fields = {c.name: getattr(row, c.name) for c in AuditEventRow.__table__.columns if c.name != "id"}
    fields["at"] = as_utc(fields["at"])
    return AuditRecord(**fields)


def _mask(value: Any, masker: PiiMasker) -> Any:
    if isinstance(value, str):
        return masker.mask(value)
    if isinstance(value, dict):
        return {key: _mask(item, masker) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask(item, masker) for item in value]
    return value

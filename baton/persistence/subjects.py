"""Crypto-shredding: each data subject's payloads are encrypted with the subject's own data key.

A run names its data subject when it starts. The subject's identifier never reaches Temporal
(not in the workflow ID, not in search attributes), and the app database keeps only a keyed hash
of its normalised form (`ref`). The data key is wrapped by the master keyring. Erasing the
subject deletes the key: from then on every payload of that subject in Temporal's histories,
which Temporal cannot edit, is unreadable, while other subjects' stay readable.

The model, chosen so that no cache can go stale in a way that loses or leaks data:

- **Key generations.** A subject's key has an ID of its own, `<ref>.<generation>`, written in
  every payload it seals. A subject registered again after an erasure gets a new generation,
  never the erased one back; keys never change, they only go from live to erased.
- **Runs are bound once.** A run that holds a subject's data says so in its workflow ID (the
  suffix `SUBJECT_RUN_SUFFIX`, added by the client) and is bound, immutably, to one key
  generation. A run without the suffix never holds a subject's data: no lookup, no "no subject"
  to cache. A run key used for one subject is refused for another, and for an erased one.
- **Erasure is announced.** Each erasure is appended to `subject_key_erasures`; every registry
  reads that log before it uses a cached key, at most every `ERASURE_POLL_SECONDS`, so an
  erasure reaches every process within that bound (measured in docs/BENCHMARKS.md).

One `SubjectKeys` per process, shared by the client, the codec and the workers (see
`baton.temporal.DataProtection`).
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import secrets
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from baton.errors import Conflict, InvalidRequest

from ..aio import of_this_loop
from ..compliance.audit import AuditEntry, AuditLog, local_actor
from ..security.codec import holds_subject, root_run_id
from ..security.keys import KEY_BYTES, LiveKeyring, UnknownKey
from .models import StoredPayloadRow, SubjectKeyErasureRow, SubjectKeyRow, WorkflowSubjectRow
from .schema import Schema

CACHE_ENTRIES = 10_000
ERASURE_POLL_SECONDS = 0.25
"""How stale a process's view of erasures may get: it reads the erasure log at most this often,
and before it uses a cached key once that much time has passed."""
REGISTER_ATTEMPTS = 3
_ERASURE_LOCK = 0x6261746F6E  # PostgreSQL advisory lock: erasures commit in the order of their IDs


class SubjectKeyError(Conflict):
    """A run's data subject cannot be served: unregistered, or registered to someone else."""


class Erasure(enum.Enum):
    """What `SubjectKeys.erase` found."""

    ERASED = "erased"
    """The subject had a live key; it is deleted now."""
    ALREADY_ERASED = "already erased"
    """The subject is known, and every key of theirs was deleted before."""
    UNKNOWN = "unknown"
    """No run was ever registered for this identifier (after normalisation)."""


def normalise_subject(subject: str) -> str:
    """The form a subject identifier is compared in: Unicode NFKC, surrounding whitespace removed,
    case folded. `Alice@Example.com ` and `alice@example.com` are one subject."""
    normal = unicodedata.normalize("NFKC", subject).strip().casefold()
    if not normal:
        raise InvalidRequest("a data subject needs a non-empty identifier")
    return normal


@dataclass(frozen=True)
class SubjectBinding:
    """A run bound to a data subject's key."""

    workflow_id: str
    key_id: str


class SubjectKeys:
    """Data subjects' keys and the runs bound to them: registration, lookup, erasure."""

    def __init__(self, schema: Schema, keys: LiveKeyring) -> None:
        self._schema = schema
        self._sessions = async_sessionmaker(schema.engine, expire_on_commit=False)
        self._keys = keys
        self._ref_secret = keys.derive("data-subjects")
        self._bindings: dict[str, str] = {}  # root workflow ID -> key ID (immutable once made)
        self._data_keys: dict[str, bytes] = {}  # key ID -> unwrapped key, until erased
        self._erasures_seen: int | None = None
        self._polls = 0  # erasure-log reads done: a key read across one is not cached
        self._polled_at = float("-inf")
        self._poll: asyncio.Future[None] | None = None

    def ref(self, subject: str) -> str:
        """The subject's pseudonymous reference: a keyed hash of the normalised identifier."""
        return self._hash(normalise_subject(subject))

    def legacy_refs(self, subject: str) -> list[str]:
        """The subject's references as versions before 0.2 made them (not normalised), where they
        differ from `ref`: an erasure covers those keys too."""
        legacy = self._hash(subject.strip())
        return [] if legacy == self.ref(subject) else [legacy]

    def _hash(self, value: str) -> str:
        return hmac.new(self._ref_secret, value.encode(), hashlib.sha256).hexdigest()

    async def register(self, workflow_id: str, subject: str) -> SubjectBinding:
        """Bind the run `workflow_id` (which must hold a subject, see `subject_run_id`) to the
        subject's live key, creating a new generation when there is none."""
        if not holds_subject(workflow_id) or "/" in workflow_id:
            raise ValueError(f"{workflow_id!r} is not the ID of a root run that holds a data subject")
        await self._schema.ready()
        ref = self.ref(subject)
        for attempt in range(REGISTER_ATTEMPTS):
            try:
                async with self._sessions() as session:
                    binding = await self._bind(session, workflow_id, ref)
                    await session.commit()
                break
            except (IntegrityError, _ErasedMeanwhile):
                # A concurrent registration made the same row, or an erasure took the key: again.
                if attempt == REGISTER_ATTEMPTS - 1:
                    raise SubjectKeyError(
                        f"run {workflow_id} could not be registered: its data subject's key kept "
                        "changing (concurrent registrations or erasures); try again"
                    ) from None
        self._bindings[workflow_id] = binding.key_id
        _trim(self._bindings)
        return binding

    async def _bind(self, session: AsyncSession, workflow_id: str, ref: str) -> SubjectBinding:
        bound = await session.get(WorkflowSubjectRow, workflow_id)
        if bound is not None:
            if bound.subject_ref != ref:
                raise SubjectKeyError(f"run {workflow_id} already belongs to another data subject")
            key = await session.get(SubjectKeyRow, bound.key_id)
            if key is None or key.wrapped_key is None:
                raise SubjectKeyError(
                    f"run {workflow_id} belonged to a data subject who was erased since; use another run key"
                )
            return SubjectBinding(workflow_id, bound.key_id)
        # Locked on PostgreSQL, so an erasure waits for this registration and then erases the
        # key this run is bound to; SQLite has one writer, so the check after the flush decides.
        live = (
            await session.scalars(
                select(SubjectKeyRow)
                .where(SubjectKeyRow.ref == ref, SubjectKeyRow.wrapped_key.is_not(None))
                .with_for_update()
            )
        ).first()
        if live is None:
            last = await session.scalar(
                select(func.max(SubjectKeyRow.generation)).where(SubjectKeyRow.ref == ref)
            )
            generation = 1 if last is None else last + 1
            key_id = f"{ref}.{generation}"
            live = SubjectKeyRow(
                key_id=key_id,
                ref=ref,
                generation=generation,
                wrapped_key=self._keys.keyring.seal(secrets.token_bytes(KEY_BYTES), _wrap_context(key_id)),
            )
            session.add(live)
        session.add(WorkflowSubjectRow(workflow_id=workflow_id, subject_ref=ref, key_id=live.key_id))
        await session.flush()  # holds the write lock on SQLite from here to the commit
        still_live = await session.scalar(
            select(SubjectKeyRow.key_id).where(
                SubjectKeyRow.key_id == live.key_id, SubjectKeyRow.wrapped_key.is_not(None)
            )
        )
        if still_live is None:  # erased between the read and the binding: never bind to it
            raise _ErasedMeanwhile
        return SubjectBinding(workflow_id, live.key_id)

    async def key_id_of(self, workflow_id: str) -> str | None:
        """The key ID a run's payloads are sealed with, or None for a run without a data subject.

        Raises `SubjectKeyError` for a run marked as holding a subject that was never registered:
        its data must not be sealed where erasure cannot reach it."""
        if not holds_subject(workflow_id):
            return None
        root = root_run_id(workflow_id)
        key_id = self._bindings.get(root)
        if key_id is None:
            await self._schema.ready()
            async with self._sessions() as session:
                row = await session.get(WorkflowSubjectRow, root)
            if row is None:
                raise SubjectKeyError(f"run {root} holds a data subject's data but was never registered")
            key_id = self._bindings[root] = row.key_id
            _trim(self._bindings)
        return key_id

    async def data_key(self, key_id: str) -> bytes | None:
        """The data key with this ID, or None once it is erased (or was never made)."""
        await self._refresh()
        key = self._data_keys.get(key_id)
        if key is not None:
            return key
        await self._schema.ready()
        while True:
            polls = self._polls
            async with self._sessions() as session:
                row = await session.get(SubjectKeyRow, key_id)
            if row is None or row.wrapped_key is None:
                return None
            if self._polls == polls:  # no erasure-log read since ours began: nothing to miss
                key = self._unwrap(row.wrapped_key, key_id)
                self._data_keys[key_id] = key
                _trim(self._data_keys)
                return key
            # A log read finished while ours was under way; it may have passed over an erasure
            # of this key that our read did not see yet: read again rather than cache it.

    async def move_within(self, session: AsyncSession, old_ref: str, new_ref: str) -> int:
        """File the keys and runs of the subject `old_ref` under `new_ref` (their identifier was
        rectified), in the caller's transaction. Key IDs stay what payloads name: the histories
        stay readable, and erasable as the rectified subject's. How many keys moved."""
        last = await session.scalar(
            select(func.max(SubjectKeyRow.generation)).where(SubjectKeyRow.ref == new_ref)
        )
        rows = (
            await session.scalars(
                select(SubjectKeyRow).where(SubjectKeyRow.ref == old_ref).order_by(SubjectKeyRow.generation)
            )
        ).all()
        for number, row in enumerate(rows, start=(last or 0) + 1):
            row.ref, row.generation = new_ref, number
        await session.execute(
            update(WorkflowSubjectRow)
            .where(WorkflowSubjectRow.subject_ref == old_ref)
            .values(subject_ref=new_ref)
        )
        return len(rows)

    async def erase(self, subject: str, actor: str | None = None) -> Erasure:
        """Delete every key of the subject and their out-of-band payloads; what was found.

        An erasure is audited (by `actor`, default the OS user at this host) in the same
        transaction, naming the subject's reference and key IDs, never the identifier."""
        return await self.erase_ref(self.ref(subject), actor, also=self.legacy_refs(subject))

    async def erase_ref(self, ref: str, actor: str | None = None, also: Iterable[str] = ()) -> Erasure:
        """`erase`, for the subject whose reference is `ref` (retention knows only that)."""
        await self._schema.ready()
        refs = {ref, *also}
        async with self._sessions() as session:
            if self._schema.engine.dialect.name == "postgresql":
                await session.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": _ERASURE_LOCK})
            rows = (await session.scalars(select(SubjectKeyRow).where(SubjectKeyRow.ref.in_(refs)))).all()
            live = [row for row in rows if row.wrapped_key is not None]
            for row in live:
                row.wrapped_key, row.erased_at = None, datetime.now(UTC)
                session.add(SubjectKeyErasureRow(key_id=row.key_id))
            erased_ids = [row.key_id for row in live]
            if erased_ids:
                await session.execute(delete(StoredPayloadRow).where(StoredPayloadRow.key_id.in_(erased_ids)))
                await AuditLog(self._schema).append_within(
                    session,
                    AuditEntry(
                        actor=actor or local_actor(),
                        action="subject.erase",
                        resource=f"subject:{ref}",
                        detail={"keys": erased_ids},
                    ),
                )
            await session.commit()
        self._forget(erased_ids)
        if live:
            return Erasure.ERASED
        return Erasure.ALREADY_ERASED if rows else Erasure.UNKNOWN

    async def _refresh(self) -> None:
        """Read the erasure log if it is due; one read at a time, shared by concurrent callers."""
        if time.monotonic() - self._polled_at < ERASURE_POLL_SECONDS:
            return
        poll = of_this_loop(self._poll)
        if poll is None:
            poll = self._poll = asyncio.ensure_future(self._read_erasures())
        try:
            await asyncio.shield(poll)
        finally:
            if self._poll is poll and poll.done():
                self._poll = None

    async def _read_erasures(self) -> None:
        started = time.monotonic()
        await self._schema.ready()
        async with self._sessions() as session:
            if self._erasures_seen is None:
                self._erasures_seen = await session.scalar(select(func.max(SubjectKeyErasureRow.id))) or 0
            else:
                rows = (
                    await session.execute(
                        select(SubjectKeyErasureRow.id, SubjectKeyErasureRow.key_id)
                        .where(SubjectKeyErasureRow.id > self._erasures_seen)
                        .order_by(SubjectKeyErasureRow.id)
                    )
                ).all()
                self._forget(key_id for _, key_id in rows)
                if rows:
                    self._erasures_seen = rows[-1][0]
            # Counted with the forgetting, in one step: a key read that ends from here on, even
            # while this session closes, may have missed what this read saw.
            self._polls += 1
        self._polled_at = started

    def _forget(self, key_ids: Iterable[str]) -> None:
        for key_id in key_ids:
            self._data_keys.pop(key_id, None)

    def _unwrap(self, wrapped: bytes, key_id: str) -> bytes:
        try:
            return self._keys.keyring.open(wrapped, _wrap_context(key_id))
        except UnknownKey:  # wrapped by a master key rotated in since the keyring was read
            return self._keys.reload().open(wrapped, _wrap_context(key_id))


class _ErasedMeanwhile(Exception):
    """The live key a registration read was erased before the registration committed."""


def _trim(cache: dict[str, Any]) -> None:
    """Keep at most CACHE_ENTRIES, dropping the oldest: a worker sees runs without end."""
    while len(cache) > CACHE_ENTRIES:
        cache.pop(next(iter(cache)))


def _wrap_context(key_id: str) -> bytes:
    return b"baton-subject-key|" + key_id.encode()

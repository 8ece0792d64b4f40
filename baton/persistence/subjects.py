"""Crypto-shredding: each data subject's payloads are encrypted with the subject's own data key.

A run names its data subject when it starts; the subject's identifier never reaches Temporal
(not in the workflow ID, not in search attributes), and the app database keeps only a keyed hash
of it (`ref`). The data key is wrapped by the master keyring. Erasing the subject deletes the
key: from then on every payload of that subject in Temporal's histories, which Temporal cannot
edit, is unreadable, while other subjects' stay readable.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from ..security.keys import KEY_BYTES, KeyProvider, UnknownKey
from .models import DataSubjectKeyRow, WorkflowSubjectRow
from .schema import Schema

CACHE_ENTRIES = 10_000
CACHE_SECONDS = 30.0
"""How long a process keeps a subject's unwrapped key (an erasure reaches every worker within
it), and a run's "no subject"."""


class SubjectKeys:
    def __init__(self, schema: Schema, keys: KeyProvider) -> None:
        self._schema = schema
        self._sessions = async_sessionmaker(schema.engine, expire_on_commit=False)
        self._provider = keys
        self._keyring = keys.load()
        self._ref_secret = self._keyring.derive("data-subjects")
        self._refs: dict[str, tuple[float, str | None]] = {}
        self._keys: dict[str, tuple[float, bytes | None]] = {}

    def ref(self, subject: str) -> str:
        """The subject's pseudonymous reference: a keyed hash, stable across key rotation."""
        if not subject.strip():
            raise ValueError("a data subject needs a non-empty identifier")
        return hmac.new(self._ref_secret, subject.strip().encode(), hashlib.sha256).hexdigest()

    async def register(self, workflow_id: str, subject: str) -> str:
        """Record that `workflow_id` holds `subject`'s data, creating the subject's key if needed."""
        await self._schema.ready()
        ref = self.ref(subject)
        async with self._sessions() as session:
            row = await session.get(DataSubjectKeyRow, ref)
            if row is None or row.wrapped_key is None:
                # A subject erased before gets a new key: new runs hold new data. The key is
                # sealed with the master key's ID inside, so an older key cannot be confused.
                fresh = self._keyring.seal(secrets.token_bytes(KEY_BYTES), _wrap_context(ref))
                if row is None:
                    session.add(DataSubjectKeyRow(ref=ref, wrapped_key=fresh))
                else:
                    row.wrapped_key, row.erased_at = fresh, None
            existing = await session.get(WorkflowSubjectRow, workflow_id)
            if existing is None:
                session.add(WorkflowSubjectRow(workflow_id=workflow_id, subject_ref=ref))
            elif existing.subject_ref != ref:  # a run ID reused (a run key) for another person
                raise ValueError(f"run {workflow_id} already belongs to another data subject")
            try:
                await session.commit()
            except IntegrityError:  # registered concurrently; the check above decides on a retry
                raise ValueError(f"run {workflow_id} was registered concurrently; try again") from None
        self._keys.pop(ref, None)
        self._remember(self._refs, workflow_id, (time.monotonic(), ref))
        return ref

    async def ref_of(self, workflow_id: str) -> str | None:
        """The subject reference of a run, or None for a run without a data subject.

        A run's subject never changes, so it is kept; "none" is rechecked after a while, as a run
        key may be reused by a run that names a subject.
        """
        # A sub-process runs as a child whose ID starts with its root run's: `<root>/<step>/<n>`.
        root = workflow_id.split("/", 1)[0]
        cached = self._refs.get(root)
        if cached is not None and (cached[1] is not None or time.monotonic() - cached[0] < CACHE_SECONDS):
            return cached[1]
        await self._schema.ready()
        async with self._sessions() as session:
            row = await session.get(WorkflowSubjectRow, root)
        ref = row.subject_ref if row else None
        self._remember(self._refs, root, (time.monotonic(), ref))
        return ref

    async def data_key(self, ref: str) -> bytes | None:
        """The subject's data key, or None once the subject is erased."""
        cached = self._keys.get(ref)
        if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        await self._schema.ready()
        async with self._sessions() as session:
            row = await session.get(DataSubjectKeyRow, ref)
        key = self._unwrap(row.wrapped_key, ref) if row and row.wrapped_key else None
        self._remember(self._keys, ref, (time.monotonic(), key))
        return key

    async def erase(self, subject: str) -> bool:
        """Delete the subject's key; True if there was one to delete."""
        await self._schema.ready()
        ref = self.ref(subject)
        async with self._sessions() as session:
            row = (
                await session.scalars(select(DataSubjectKeyRow).where(DataSubjectKeyRow.ref == ref))
            ).first()
            if row is None or row.wrapped_key is None:
                return False
            row.wrapped_key, row.erased_at = None, datetime.now(UTC)
            await session.commit()
        self._remember(self._keys, ref, (time.monotonic(), None))
        return True

    def _unwrap(self, wrapped: bytes, ref: str) -> bytes:
        try:
            return self._keyring.open(wrapped, _wrap_context(ref))
        except UnknownKey:
            # Wrapped by a master key rotated in since this process loaded its keys.
            self._keyring = self._provider.load()
            return self._keyring.open(wrapped, _wrap_context(ref))

    @staticmethod
    def _remember(cache: dict[str, Any], key: str, value: Any) -> None:
        """Keep at most CACHE_ENTRIES, dropping the oldest: a worker sees runs without end."""
        cache.pop(key, None)
        cache[key] = value
        if len(cache) > CACHE_ENTRIES:
            cache.pop(next(iter(cache)))


def _wrap_context(ref: str) -> bytes:
    return b"baton-subject-key|" + ref.encode()

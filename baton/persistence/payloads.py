"""Large payloads out of band: a Temporal `StorageDriver` over the app database.

Temporal's data converter hands every payload above `payload_offload_bytes` to this driver, after
the codec has encrypted it, and records only a reference in the workflow history, so long chats
and big documents do not bloat it. Entries are addressed by the SHA-256 of their (encrypted)
bytes, which is checked again on the way back.

Each entry records its run and, for a data subject's run, the subject's key ID, both read from
the payload's authenticated metadata. Entries are deleted with the subject's key on erasure
(`SubjectKeys.erase`), and once Temporal no longer holds their run's history
(`delete_unreferenced`, when the namespace's retention has removed it).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    StorageDriver,
    StorageDriverClaim,
    StorageDriverRetrieveContext,
    StorageDriverStoreContext,
)

from baton.errors import NotFound

from ..security.codec import SUBJECT, WORKFLOW
from .models import StoredPayloadRow
from .schema import Schema

DRIVER_NAME = "baton-db"
SWEEP_GRACE = timedelta(hours=1)
"""Entries younger than this are never swept: their run may not have reached Temporal yet."""


class PayloadNotFound(NotFound):
    """A history references a payload the app database no longer holds."""


class DatabasePayloadDriver(StorageDriver):
    """Stores (encrypted) payloads in the `stored_payloads` table of the app database."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self._sessions = async_sessionmaker(schema.engine, expire_on_commit=False)

    def name(self) -> str:
        return DRIVER_NAME

    async def store(
        self, context: StorageDriverStoreContext, payloads: Sequence[Payload]
    ) -> list[StorageDriverClaim]:
        await self.schema.ready()
        claims, rows = [], {}
        for payload in payloads:
            data = payload.SerializeToString(deterministic=True)
            digest = hashlib.sha256(data).hexdigest()
            claims.append(StorageDriverClaim(claim_data={"digest": digest}))
            rows[digest] = StoredPayloadRow(
                digest=digest,
                data=data,
                size=len(data),
                namespace=context.target.namespace if context.target else None,
                workflow_id=_text(payload.metadata.get(WORKFLOW)),
                key_id=_text(payload.metadata.get(SUBJECT)),
            )
        try:
            await self._insert(rows.values())
        except IntegrityError:
            # Some of the same encrypted bytes were stored already (the same payload handed over
            # twice): insert one by one, keeping what is there, which is all a claim needs.
            for row in rows.values():
                with contextlib.suppress(IntegrityError):
                    await self._insert([row])
        return claims

    async def _insert(self, rows: Iterable[StoredPayloadRow]) -> None:
        async with self._sessions() as session:
            session.add_all(
                StoredPayloadRow(
                    digest=r.digest,
                    data=r.data,
                    size=r.size,
                    namespace=r.namespace,
                    workflow_id=r.workflow_id,
                    key_id=r.key_id,
                )
                for r in rows
            )
            await session.commit()

    async def retrieve(
        self, context: StorageDriverRetrieveContext, claims: Sequence[StorageDriverClaim]
    ) -> list[Payload]:
        await self.schema.ready()
        digests = [claim.claim_data["digest"] for claim in claims]
        async with self._sessions() as session:
            rows = {
                row.digest: row
                for row in await session.scalars(
                    select(StoredPayloadRow).where(StoredPayloadRow.digest.in_(digests))
                )
            }
        payloads = []
        for digest in digests:
            row = rows.get(digest)
            if row is None:
                raise PayloadNotFound(
                    f"stored payload {digest[:12]}… is missing from the app database "
                    "(its run's history expired, or its data subject was erased)"
                )
            if hashlib.sha256(row.data).hexdigest() != digest:
                raise PayloadNotFound(f"stored payload {digest[:12]}… does not match its digest")
            payloads.append(Payload.FromString(row.data))
        return payloads

    async def delete_unreferenced(self, namespace: str, referenced: Callable[[str], Awaitable[bool]]) -> int:
        """Delete the entries of runs in `namespace` that nothing references any more; how many went.

        `referenced(workflow_id)` asks Temporal (see `baton.activities.compliance`). Entries
        younger than `SWEEP_GRACE`, and entries without a known namespace and run, are kept."""
        await self.schema.ready()
        cutoff = datetime.now(UTC) - SWEEP_GRACE
        async with self._sessions() as session:
            runs = (
                await session.scalars(
                    select(StoredPayloadRow.workflow_id)
                    .where(
                        StoredPayloadRow.namespace == namespace,
                        StoredPayloadRow.workflow_id.is_not(None),
                        StoredPayloadRow.created_at < cutoff,
                    )
                    .distinct()
                )
            ).all()
        gone = [run for run in runs if run is not None and not await referenced(run)]
        if not gone:
            return 0
        async with self._sessions() as session:
            result = await session.execute(
                delete(StoredPayloadRow).where(
                    StoredPayloadRow.namespace == namespace,
                    StoredPayloadRow.workflow_id.in_(gone),
                    StoredPayloadRow.created_at < cutoff,
                )
            )
            await session.commit()
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _text(value: bytes | None) -> str | None:
    return value.decode(errors="replace") if value else None

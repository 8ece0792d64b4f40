"""Large payloads out of band: a Temporal `StorageDriver` over the app database.

Temporal's data converter hands every payload above `payload_offload_bytes` to this driver, after
the codec has encrypted it, and records only a reference in the workflow history, so long chats
and big documents do not bloat it. Entries are addressed by the SHA-256 of their (encrypted)
bytes, which is checked again on the way back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    StorageDriver,
    StorageDriverClaim,
    StorageDriverRetrieveContext,
    StorageDriverStoreContext,
)

from .models import StoredPayloadRow
from .schema import Schema

DRIVER_NAME = "baton-db"


class PayloadNotFound(LookupError):
    """A history references a payload the app database no longer holds."""


class DatabasePayloadDriver(StorageDriver):
    """Stores (encrypted) payloads in the `stored_payloads` table of the app database."""

    def __init__(self, schema: Schema) -> None:
        self._schema = schema
        self._sessions = async_sessionmaker(schema.engine, expire_on_commit=False)

    def name(self) -> str:
        return DRIVER_NAME

    async def store(
        self, context: StorageDriverStoreContext, payloads: Sequence[Payload]
    ) -> list[StorageDriverClaim]:
        await self._schema.ready()
        claims, rows = [], {}
        for payload in payloads:
            data = payload.SerializeToString(deterministic=True)
            digest = hashlib.sha256(data).hexdigest()
            claims.append(StorageDriverClaim(claim_data={"digest": digest}))
            rows[digest] = StoredPayloadRow(digest=digest, data=data, size=len(data))
        for attempt in range(2):
            async with self._sessions() as session:
                present = set(
                    (
                        await session.scalars(
                            select(StoredPayloadRow.digest).where(StoredPayloadRow.digest.in_(rows))
                        )
                    ).all()
                )
                session.add_all(
                    StoredPayloadRow(digest=d, data=r.data, size=r.size)
                    for d, r in rows.items()
                    if d not in present
                )
                try:
                    await session.commit()
                    break
                except IntegrityError:
                    # Another worker stored some of the same content in between: look again, once.
                    await session.rollback()
                    if attempt:
                        raise
        return claims

    async def retrieve(
        self, context: StorageDriverRetrieveContext, claims: Sequence[StorageDriverClaim]
    ) -> list[Payload]:
        await self._schema.ready()
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
                raise PayloadNotFound(f"stored payload {digest[:12]}… is missing from the app database")
            if hashlib.sha256(row.data).hexdigest() != digest:
                raise PayloadNotFound(f"stored payload {digest[:12]}… does not match its digest")
            payloads.append(Payload.FromString(row.data))
        return payloads

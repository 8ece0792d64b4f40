"""Tables of the app database. Schema changes go through Alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class ProcessDefinitionRow(Base):
    """One deployed version of a process definition; versions of a name count up from 1."""

    __tablename__ = "process_definitions"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_process_definitions_name_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=lambda: datetime.now(UTC))
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    """When the version was retired: new runs no longer take it; runs of it keep it."""


class StoredPayloadRow(Base):
    """A Temporal payload kept out of band (encrypted by the codec), under the SHA-256 of its bytes.

    Every encryption has a fresh nonce, so equal payloads are stored apart: the digest addresses
    and checks an entry, it does not deduplicate. The run (namespace and workflow ID) and the data
    subject's key it belongs to say when it may be deleted."""

    __tablename__ = "stored_payloads"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=lambda: datetime.now(UTC))
    namespace: Mapped[str | None] = mapped_column(String(200), nullable=True)
    workflow_id: Mapped[str | None] = mapped_column(String(400), nullable=True, index=True)
    key_id: Mapped[str | None] = mapped_column(String(80), nullable=True, index=True)


class AuditEventRow(Base):
    """One entry of the hash-chained, append-only audit trail (see `baton.compliance.audit`)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(50), index=True)
    resource: Mapped[str | None] = mapped_column(String(400), nullable=True)
    namespace: Mapped[str] = mapped_column(String(200))
    workflow_id: Mapped[str | None] = mapped_column(String(400), nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(400), nullable=True)
    correlation_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class SubjectKeyRow(Base):
    """One generation of a data subject's own data key, wrapped by the master keyring; erased by
    deleting it. A subject registered again after an erasure gets the next generation.

    `ref` is a keyed hash of the subject's identifier, so the table holds no personal data."""

    __tablename__ = "subject_keys"
    __table_args__ = (UniqueConstraint("ref", "generation", name="uq_subject_keys_ref_generation"),)

    key_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    ref: Mapped[str] = mapped_column(String(64), index=True)
    generation: Mapped[int] = mapped_column(Integer)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=lambda: datetime.now(UTC))
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SubjectKeyErasureRow(Base):
    """The log of erasures every process reads to drop the keys it still holds in memory."""

    __tablename__ = "subject_key_erasures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(80))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=lambda: datetime.now(UTC))


class WorkflowSubjectRow(Base):
    """Which data subject's key a run's payloads are sealed with (by reference, never by
    identifier); made once, when the run starts, and never changed."""

    __tablename__ = "workflow_subjects"

    workflow_id: Mapped[str] = mapped_column(String(400), primary_key=True)
    subject_ref: Mapped[str] = mapped_column(String(64), index=True)
    key_id: Mapped[str] = mapped_column(String(80))


class ProcessingRecordRow(Base):
    """One purpose of processing a data subject's data (GDPR art. 30), with the runs it covers and
    when its data is due for deletion. The subject is its keyed reference, never its identifier."""

    __tablename__ = "processing_records"
    __table_args__ = (
        UniqueConstraint(
            "subject_ref", "purpose", "legal_basis", "data_category", name="uq_processing_records_purpose"
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject_ref: Mapped[str] = mapped_column(String(64), index=True)
    purpose: Mapped[str] = mapped_column(String(200))
    legal_basis: Mapped[str] = mapped_column(String(30))
    data_category: Mapped[str] = mapped_column(String(100))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    retention_days: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    runs: Mapped[list[str]] = mapped_column(JSON)


class SubjectNoteRow(Base):
    """Free text about a data subject (a legal hold's reason, a rectification's note), which may
    name people: workflows refer to it by ID, so it never enters a history that outlives erasure."""

    __tablename__ = "subject_notes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    subject_ref: Mapped[str] = mapped_column(String(64), index=True)
    text: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RetentionHoldRow(Base):
    """A legal hold on a data subject: nothing of theirs is deleted for retention until released."""

    __tablename__ = "retention_holds"

    subject_ref: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(400))
    placed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    placed_by: Mapped[str] = mapped_column(String(200))

"""Processing records (one per data subject and purpose of processing) and legal holds.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "processing_records",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("subject_ref", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(200), nullable=False),
        sa.Column("legal_basis", sa.String(30), nullable=False),
        sa.Column("data_category", sa.String(100), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("runs", sa.JSON(), nullable=False),
        sa.UniqueConstraint(
            "subject_ref", "purpose", "legal_basis", "data_category", name="uq_processing_records_purpose"
        ),
    )
    op.create_index("ix_processing_records_subject_ref", "processing_records", ["subject_ref"])
    op.create_index("ix_processing_records_due_at", "processing_records", ["due_at"])
    op.create_table(
        "retention_holds",
        sa.Column("subject_ref", sa.String(64), primary_key=True),
        sa.Column("reason", sa.String(400), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("placed_by", sa.String(200), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("retention_holds")
    op.drop_index("ix_processing_records_due_at", "processing_records")
    op.drop_index("ix_processing_records_subject_ref", "processing_records")
    op.drop_table("processing_records")

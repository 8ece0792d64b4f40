"""Data subjects' keys (crypto-shredding) and which runs belong to them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "data_subject_keys",
        sa.Column("ref", sa.String(64), primary_key=True),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "workflow_subjects",
        sa.Column("workflow_id", sa.String(400), primary_key=True),
        sa.Column("subject_ref", sa.String(64), nullable=False),
    )
    op.create_index("ix_workflow_subjects_subject_ref", "workflow_subjects", ["subject_ref"])


def downgrade() -> None:
    op.drop_index("ix_workflow_subjects_subject_ref", "workflow_subjects")
    op.drop_table("workflow_subjects")
    op.drop_table("data_subject_keys")

"""Subject notes: the free text of a legal hold or a rectification, kept out of workflow histories.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subject_notes",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("subject_ref", sa.String(64), nullable=False),
        sa.Column("text", sa.String(2000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_subject_notes_subject_ref", "subject_notes", ["subject_ref"])


def downgrade() -> None:
    op.drop_index("ix_subject_notes_subject_ref", "subject_notes")
    op.drop_table("subject_notes")

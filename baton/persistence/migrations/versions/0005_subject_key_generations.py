"""Data subjects' keys in generations, an erasure log, and stored payloads that can be deleted.

A subject's key gets an ID of its own (`<ref>.<generation>`); keys made before keep their
reference as their ID (generation 0), which is what their payloads name. Runs are bound to a key
ID. Stored payloads record their run and data subject's key.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subject_keys",
        sa.Column("key_id", sa.String(80), primary_key=True),
        sa.Column("ref", sa.String(64), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("ref", "generation", name="uq_subject_keys_ref_generation"),
    )
    op.create_index("ix_subject_keys_ref", "subject_keys", ["ref"])
    op.execute(
        "INSERT INTO subject_keys (key_id, ref, generation, wrapped_key, created_at, erased_at) "
        "SELECT ref, ref, 0, wrapped_key, created_at, erased_at FROM data_subject_keys"
    )
    op.drop_table("data_subject_keys")

    op.create_table(
        "subject_key_erasures",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("key_id", sa.String(80), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )

    with op.batch_alter_table("workflow_subjects") as batch:
        batch.add_column(sa.Column("key_id", sa.String(80), nullable=True))
    op.execute("UPDATE workflow_subjects SET key_id = subject_ref")
    with op.batch_alter_table("workflow_subjects") as batch:
        batch.alter_column("key_id", existing_type=sa.String(80), nullable=False)

    with op.batch_alter_table("stored_payloads") as batch:
        batch.add_column(sa.Column("namespace", sa.String(200), nullable=True))
        batch.add_column(sa.Column("workflow_id", sa.String(400), nullable=True))
        batch.add_column(sa.Column("key_id", sa.String(80), nullable=True))
        batch.create_index("ix_stored_payloads_workflow_id", ["workflow_id"])
        batch.create_index("ix_stored_payloads_key_id", ["key_id"])


def downgrade() -> None:
    with op.batch_alter_table("stored_payloads") as batch:
        batch.drop_index("ix_stored_payloads_key_id")
        batch.drop_index("ix_stored_payloads_workflow_id")
        batch.drop_column("key_id")
        batch.drop_column("workflow_id")
        batch.drop_column("namespace")
    with op.batch_alter_table("workflow_subjects") as batch:
        batch.drop_column("key_id")
    op.drop_table("subject_key_erasures")
    op.create_table(
        "data_subject_keys",
        sa.Column("ref", sa.String(64), primary_key=True),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.execute(
        "INSERT INTO data_subject_keys (ref, wrapped_key, created_at, erased_at) "
        "SELECT ref, wrapped_key, created_at, erased_at FROM subject_keys WHERE generation = 0"
    )
    op.drop_index("ix_subject_keys_ref", "subject_keys")
    op.drop_table("subject_keys")

"""The audit trail becomes a hash chain that the database keeps append-only.

Entries get the seed's remaining fields (resource, IP, user agent, correlation ID), a position
(`seq`, unique: writers cannot fork the chain) and their hashes; entries already there are
chained in the order they were written. Triggers refuse UPDATE and DELETE (and, on PostgreSQL,
TRUNCATE).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from baton.compliance.audit import GENESIS, entry_hash

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

REFUSAL = "audit_events is append-only"


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("resource", sa.String(400), nullable=True))
        batch.add_column(sa.Column("ip", sa.String(64), nullable=True))
        batch.add_column(sa.Column("user_agent", sa.String(400), nullable=True))
        batch.add_column(sa.Column("correlation_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("prev_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("hash", sa.String(64), nullable=True))
    _chain_existing_entries()
    with op.batch_alter_table("audit_events") as batch:
        batch.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
        batch.alter_column("prev_hash", existing_type=sa.String(64), nullable=False)
        batch.alter_column("hash", existing_type=sa.String(64), nullable=False)
        batch.create_unique_constraint("uq_audit_events_seq", ["seq"])
        batch.create_index("ix_audit_events_action", ["action"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{REFUSAL}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()"
        )
    else:
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_events_no_{operation.lower()} BEFORE {operation} ON audit_events "
                f"BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END"
            )


def _chain_existing_entries() -> None:
    table = sa.table(
        "audit_events",
        sa.column("id", sa.Integer()),
        sa.column("at", sa.DateTime(timezone=True)),
        sa.column("actor", sa.String()),
        sa.column("action", sa.String()),
        sa.column("namespace", sa.String()),
        sa.column("workflow_id", sa.String()),
        sa.column("detail", sa.JSON()),
        sa.column("seq", sa.BigInteger()),
        sa.column("prev_hash", sa.String()),
        sa.column("hash", sa.String()),
    )
    bind = op.get_bind()
    rows = bind.execute(sa.select(table).order_by(table.c.id)).all()
    prev_hash = GENESIS
    for seq, row in enumerate(rows, start=1):
        fields = {
            "seq": seq,
            "at": row.at,
            "actor": row.actor,
            "action": row.action,
            "resource": None,
            "namespace": row.namespace,
            "workflow_id": row.workflow_id,
            "detail": row.detail,
            "ip": None,
            "user_agent": None,
            "correlation_id": None,
            "prev_hash": prev_hash,
        }
        prev_hash = entry_hash(fields)
        bind.execute(
            table.update()
            .where(table.c.id == row.id)
            .values(seq=seq, prev_hash=fields["prev_hash"], hash=prev_hash)
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_events_no_truncate ON audit_events")
        op.execute("DROP TRIGGER audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION audit_events_append_only()")
    else:
        op.execute("DROP TRIGGER audit_events_no_update")
        op.execute("DROP TRIGGER audit_events_no_delete")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_index("ix_audit_events_action")
        batch.drop_constraint("uq_audit_events_seq", type_="unique")
        for name in ("hash", "prev_hash", "correlation_id", "user_agent", "ip", "resource", "seq"):
            batch.drop_column(name)

"""Audit log tables: the sequencer head row, entries and checkpoints.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("frontier", sa.LargeBinary, nullable=False),
        sa.Column("pruned_size", sa.BigInteger, nullable=False),
        sa.Column("pruned_frontier", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "audit_entries",
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_audit_entries_logged_at", "audit_entries", ["logged_at"])
    op.create_table(
        "audit_checkpoints",
        sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("root", sa.LargeBinary(32), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    head = sa.table(
        "audit_head", sa.column("id"), sa.column("size"), sa.column("frontier"),
        sa.column("pruned_size"), sa.column("pruned_frontier"),
    )
    op.bulk_insert(head, [{"id": 1, "size": 0, "frontier": b"", "pruned_size": 0, "pruned_frontier": b""}])


def downgrade() -> None:
    op.drop_index("ix_audit_entries_logged_at", table_name="audit_entries")
    for name in ("audit_checkpoints", "audit_entries", "audit_head"):
        op.drop_table(name)

"""Invariant overrides: changes applied although they break a policy invariant, with who and why.

Revision ID: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.create_table(
        "policy_invariant_overrides",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("invariant_id", sa.String(64), nullable=False, index=True),
        sa.Column("change", sa.String(300), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False, server_default=""),
        sa.Column("reason", sa.String(2000), nullable=False),
        sa.Column("counterexample", sa.Text, nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_table("policy_invariant_overrides")

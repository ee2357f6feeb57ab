"""Approval use cases: what an access request is for (e.g. ``security-testing``).

Existing approvals get ``""`` (no use case): they keep granting what they granted.

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    with op.batch_alter_table("policy_approvals") as batch:
        batch.add_column(sa.Column("use_case", sa.String(64), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("policy_approvals") as batch:
        batch.drop_column("use_case")

"""Usage limits: requests and tokens per minute, tokens per day, spend per month.

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "usage_limits",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("scope", sa.String(8), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False, server_default=""),
        sa.Column("model", sa.String(200), nullable=False, server_default=""),
        sa.Column("requests_per_minute", sa.Integer, nullable=True),
        sa.Column("tokens_per_minute", sa.BigInteger, nullable=True),
        sa.Column("tokens_per_day", sa.BigInteger, nullable=True),
        sa.Column("spend_per_month_micro_usd", sa.BigInteger, nullable=True),
        sa.Column("on_store_error", sa.String(8), nullable=False, server_default="deny"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False, server_default=""),
        sa.UniqueConstraint("scope", "subject", "model", name="uq_usage_limits_subject"),
    )


def downgrade() -> None:
    op.drop_table("usage_limits")

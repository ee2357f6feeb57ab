"""Incidents: jailbreaks found by assessments, with their CJS severity and the directive that answered them.

Revision ID: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    op.create_table(
        "policy_incidents",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("template_id", sa.String(200), nullable=False),
        sa.Column("cjs_score", sa.Float, nullable=False),
        sa.Column("band", sa.String(16), nullable=False),
        sa.Column("details", sa.Text, nullable=False, server_default=""),
        sa.Column("proposed_text", sa.Text, nullable=False, server_default=""),
        sa.Column("directive_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("close_reason", sa.String(2000), nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_table("policy_incidents")

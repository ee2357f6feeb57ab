"""Policy tables: directives, access approvals and their history, time-boxed grants.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "policy_directives",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("authority", sa.String(200), nullable=False, server_default=""),
        sa.Column("reference", sa.String(300), nullable=False, server_default=""),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(1000), nullable=False, server_default=""),
    )
    op.create_table(
        "policy_approvals",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("org_slug", sa.String(64), nullable=False, index=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False, server_default=""),
        sa.Column("request_reason", sa.String(2000), nullable=False, server_default=""),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(200), nullable=False, server_default=""),
        sa.Column("decision_reason", sa.String(2000), nullable=False, server_default=""),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(2000), nullable=False, server_default=""),
    )
    op.create_table(
        "policy_approval_events",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("approval_id", sa.String(32), nullable=False, index=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False, server_default=""),
        sa.Column("reason", sa.String(2000), nullable=False, server_default=""),
    )
    op.create_table(
        "policy_grants",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("org_slug", sa.String(64), nullable=False, index=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(2000), nullable=False, server_default=""),
        sa.Column("created_by", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(2000), nullable=False, server_default=""),
    )


def downgrade() -> None:
    for name in ("policy_grants", "policy_approval_events", "policy_approvals", "policy_directives"):
        op.drop_table(name)

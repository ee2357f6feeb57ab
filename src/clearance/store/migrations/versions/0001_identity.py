"""Identity tables: orgs, org groups, users, API keys, and the state version row.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "orgs",
        sa.Column("slug", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "org_groups",
        sa.Column("slug", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
    )
    op.create_table(
        "org_group_members",
        sa.Column("org_slug", sa.String(64), sa.ForeignKey("orgs.slug", ondelete="CASCADE"), primary_key=True),
        sa.Column("group_slug", sa.String(64), sa.ForeignKey("org_groups.slug", ondelete="CASCADE"), primary_key=True),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("org_slug", sa.String(64), sa.ForeignKey("orgs.slug"), nullable=False, index=True),
        sa.Column("email", sa.String(320), nullable=False, server_default=""),
        sa.Column("nationality", sa.String(2), nullable=False, server_default=""),
        sa.Column("us_person", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("verified", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attributes", sa.JSON, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id"), nullable=False, index=True),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("use_case", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "state_version",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.bulk_insert(sa.table("state_version", sa.column("id"), sa.column("version")), [{"id": 1, "version": 1}])


def downgrade() -> None:
    for name in ("state_version", "api_keys", "users", "org_group_members", "org_groups", "orgs"):
        op.drop_table(name)

"""Identity lifecycle and named administrators.

Orgs and users can be disabled (``disabled_at``); an org may hold the SHA-256
of its SCIM provisioning token (and whether SCIM may set ``verified``); a deleted user is a
tombstone (``deleted_at``) whose keys are revoked.  ``verified_until`` ends a
user's verification at an instant, and ``source`` says who asserts the user
("" for the CLI or admin API, the issuer URL for users created from OIDC
tokens).  ``admins`` holds the named administrators with their role, their
org (org-admins only) and the SHA-256 of their expiring token.

Existing rows keep their meaning: nothing is disabled, deleted or expiring.

Revision ID: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    with op.batch_alter_table("orgs") as batch:
        batch.add_column(sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("scim_token_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("scim_trust_verified", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_index("ix_orgs_scim_token_hash", "orgs", ["scim_token_hash"], unique=True)
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("verified_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("source", sa.String(300), nullable=False, server_default=""))
    op.create_table(
        "admins",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("org_slug", sa.String(64), sa.ForeignKey("orgs.slug"), nullable=True),
        sa.Column("token_id", sa.String(32), nullable=False, unique=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False, server_default=""),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("admins")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("source")
        batch.drop_column("verified_until")
        batch.drop_column("deleted_at")
        batch.drop_column("disabled_at")
    op.drop_index("ix_orgs_scim_token_hash", "orgs")
    with op.batch_alter_table("orgs") as batch:
        batch.drop_column("scim_trust_verified")
        batch.drop_column("scim_token_hash")
        batch.drop_column("disabled_at")

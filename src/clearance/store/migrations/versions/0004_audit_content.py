"""Audit content: encrypted prompts and completions, outside the hashed entries.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "audit_content",
        sa.Column("entry_idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("part", sa.String(16), primary_key=True),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("nonce", sa.LargeBinary(12), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_audit_content_request_id", "audit_content", ["request_id"])
    op.create_index("ix_audit_content_logged_at", "audit_content", ["logged_at"])


def downgrade() -> None:
    op.drop_index("ix_audit_content_logged_at", table_name="audit_content")
    op.drop_index("ix_audit_content_request_id", table_name="audit_content")
    op.drop_table("audit_content")

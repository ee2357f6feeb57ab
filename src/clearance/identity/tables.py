"""Tables for organisations, org groups, users, API keys, administrators and the state version.

``state_version`` is a single row bumped by every control-plane change; each
worker polls it cheaply and rebuilds its snapshot when it moves.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from clearance.store.base import Base


class Org(Base):
    __tablename__ = "orgs"
    slug: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The org's SCIM provisioning token (SHA-256), and whether SCIM may set a user's ``verified``.
    scim_token_hash: Mapped[str | None] = mapped_column(String(64), index=True, unique=True, nullable=True)
    scim_trust_verified: Mapped[bool] = mapped_column(Boolean, default=False)


class OrgGroup(Base):
    __tablename__ = "org_groups"
    slug: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")


class OrgGroupMember(Base):
    __tablename__ = "org_group_members"
    org_slug: Mapped[str] = mapped_column(ForeignKey("orgs.slug", ondelete="CASCADE"), primary_key=True)
    group_slug: Mapped[str] = mapped_column(ForeignKey("org_groups.slug", ondelete="CASCADE"), primary_key=True)


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_slug: Mapped[str] = mapped_column(ForeignKey("orgs.slug"), index=True)
    email: Mapped[str] = mapped_column(String(320), default="")
    nationality: Mapped[str] = mapped_column(String(2), default="")
    us_person: Mapped[bool] = mapped_column(Boolean, default=False)
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attributes: Mapped[dict] = mapped_column(JSON, default=dict)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    verified_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Who asserts this user: "" (the CLI or admin API) or the OIDC issuer that created it.
    source: Mapped[str] = mapped_column(String(300), default="")


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    use_case: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Admin(Base):
    """A named administrator: a role, an org for org-admins, and the SHA-256 of an expiring token."""

    __tablename__ = "admins"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    org_slug: Mapped[str | None] = mapped_column(ForeignKey("orgs.slug"), nullable=True)
    token_id: Mapped[str] = mapped_column(String(32), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(64), default="")
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class StateVersion(Base):
    __tablename__ = "state_version"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)

"""Tables of the policy area: directives, access approvals (with their history) and time-boxed grants.

Rows are never deleted: a revoked directive, approval or grant keeps its row
with the time and reason of the revocation, so the record of who could use
what, when and why stays complete.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from clearance.store.base import Base


class Directive(Base):
    """A Cedar policy applied by an operator, in force from ``effective_at`` until expiry or revocation."""

    __tablename__ = "policy_directives"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    authority: Mapped[str] = mapped_column(String(200), default="")
    reference: Mapped[str] = mapped_column(String(300), default="")
    text: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    effective_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_reason: Mapped[str] = mapped_column(String(1000), default="")


class Approval(Base):
    """A customer's request for access to a gated model, and the operator's answer."""

    __tablename__ = "policy_approvals"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_slug: Mapped[str] = mapped_column(String(64), index=True)
    model: Mapped[str] = mapped_column(String(200))
    # What the access is for, e.g. "security-testing" ("" when not stated); policies can tell
    # approvals apart by it (see ``engine.USE_CASE_ATTRIBUTES``).
    use_case: Mapped[str] = mapped_column(String(64), default="")
    # "requested" | "approved" | "denied" | "revoked"
    status: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str] = mapped_column(String(200), default="")
    request_reason: Mapped[str] = mapped_column(String(2000), default="")
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str] = mapped_column(String(200), default="")
    decision_reason: Mapped[str] = mapped_column(String(2000), default="")
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_reason: Mapped[str] = mapped_column(String(2000), default="")


class ApprovalEvent(Base):
    """One step in an approval's history: requested, approved, denied or revoked."""

    __tablename__ = "policy_approval_events"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    approval_id: Mapped[str] = mapped_column(String(32), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    action: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(200), default="")
    reason: Mapped[str] = mapped_column(String(2000), default="")


class Grant(Base):
    """Access for one org to one model between two instants (e.g. a pre-release evaluation window)."""

    __tablename__ = "policy_grants"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_slug: Mapped[str] = mapped_column(String(64), index=True)
    model: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(String(2000), default="")
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_reason: Mapped[str] = mapped_column(String(2000), default="")


class InvariantOverride(Base):
    """A change applied although it breaks a policy invariant: who, why, and the counterexample shown."""

    __tablename__ = "policy_invariant_overrides"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    invariant_id: Mapped[str] = mapped_column(String(64), index=True)
    change: Mapped[str] = mapped_column(String(300))  # e.g. "directive apply EO-1"
    actor: Mapped[str] = mapped_column(String(200), default="")
    reason: Mapped[str] = mapped_column(String(2000))
    counterexample: Mapped[str] = mapped_column(Text, default="")  # JSON


class Incident(Base):
    """A jailbreak found by an assessment: its CJS severity, evidence, proposed directive and what became of it."""

    __tablename__ = "policy_incidents"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # INC-0001; also the id of its directive
    title: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16))  # "open" | "applied" | "closed"
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reported_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)  # the report's
    model: Mapped[str] = mapped_column(String(200))
    template_id: Mapped[str] = mapped_column(String(200))
    cjs_score: Mapped[float] = mapped_column(Float)
    band: Mapped[str] = mapped_column(String(16))
    details: Mapped[str] = mapped_column(Text, default="")  # JSON: axes, evidence, what-if, report target
    proposed_text: Mapped[str] = mapped_column(Text, default="")
    directive_id: Mapped[str] = mapped_column(String(64), default="")
    applied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    close_reason: Mapped[str] = mapped_column(String(2000), default="")

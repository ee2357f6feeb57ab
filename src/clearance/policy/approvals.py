"""Customer access requests for gated models: request, approve, deny, revoke, each with a reason.

An approved request becomes policy at the next snapshot: a link of the
``approval`` template (``permit(principal in ?principal, action, resource ==
?resource)``) for the org and model, and membership of the org in the model's
``ApprovalList``, which lifts the ``approval-required`` forbid.  Every step is
kept in ``policy_approval_events``; rows are never deleted.

A request may name a use case (a slug such as ``security-testing``).  An
approval with a use case is still an approval for the model; the org also
becomes a member of ``ApprovalList::"<model>#<use case>"``, so policies can
tell approvals apart (``principal in resource.security_testing_approvals``
lets the high-risk cyber tier through, see ``policies/guard.cedar``).
"""

from __future__ import annotations

from collections.abc import Collection
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from clearance.audit.changes import note
from clearance.policy._views import check_org_and_model, iso, new_id
from clearance.policy.clock import utc, utcnow
from clearance.policy.errors import Conflict, InvalidRequest, NotFound
from clearance.policy.tables import Approval, ApprovalEvent
from clearance.store.version import bump_version

STATUSES = ("requested", "approved", "denied", "revoked")
SECURITY_TESTING = "security-testing"
_USE_CASE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


@dataclass(frozen=True, slots=True)
class ApprovalView:
    id: str
    org: str
    model: str
    use_case: str
    status: str
    requested_by: str
    request_reason: str
    requested_at: datetime
    decided_by: str
    decision_reason: str
    decided_at: datetime | None
    revoked_at: datetime | None
    revoked_reason: str
    history: tuple[dict, ...] = ()

    def to_json(self) -> dict:
        return {
            "id": self.id, "org": self.org, "model": self.model, "use_case": self.use_case, "status": self.status,
            "requested_by": self.requested_by, "request_reason": self.request_reason,
            "requested_at": iso(self.requested_at), "decided_by": self.decided_by,
            "decision_reason": self.decision_reason, "decided_at": iso(self.decided_at),
            "revoked_at": iso(self.revoked_at), "revoked_reason": self.revoked_reason,
            "history": list(self.history),
        }


def _view(session: Session, a: Approval, with_history: bool = False) -> ApprovalView:
    history: tuple[dict, ...] = ()
    if with_history:
        events = session.execute(
            select(ApprovalEvent).where(ApprovalEvent.approval_id == a.id).order_by(ApprovalEvent.seq)
        ).scalars()
        history = tuple({"at": iso(utc(e.at)), "action": e.action, "actor": e.actor, "reason": e.reason} for e in events)
    return ApprovalView(
        a.id, a.org_slug, a.model, a.use_case or "", a.status, a.requested_by, a.request_reason, utc(a.requested_at),
        a.decided_by, a.decision_reason, utc(a.decided_at) if a.decided_at else None,
        utc(a.revoked_at) if a.revoked_at else None, a.revoked_reason, history,
    )


def _event(session: Session, approval_id: str, action: str, actor: str, reason: str, at: datetime) -> None:
    session.add(ApprovalEvent(approval_id=approval_id, at=at, action=action, actor=actor or "", reason=reason or ""))


def _load(session: Session, approval_id: str) -> Approval:
    row = session.get(Approval, approval_id)
    if row is None:
        raise NotFound(f"no approval request {approval_id!r}")
    return row


def check_use_case(use_case: str) -> str:
    """A use case is "" or a lowercase slug (letters, digits, dashes; at most 64)."""
    use_case = (use_case or "").strip()
    if use_case and not _USE_CASE.fullmatch(use_case):
        raise InvalidRequest(f"use case {use_case!r} must be a lowercase slug such as {SECURITY_TESTING!r}")
    return use_case


def request_approval(
    session: Session, org: str, model: str, requested_by: str = "", reason: str = "",
    known_models: Collection[str] | None = None, use_case: str = "",
) -> ApprovalView:
    """Record a customer's request for access to ``model`` (for ``use_case``, if given).

    One open (requested or approved) request per org, model and use case.
    Raises ``InvalidRequest`` or ``Conflict``.
    """
    check_org_and_model(session, org, model, known_models)
    use_case = check_use_case(use_case)
    open_ = session.execute(select(Approval).where(
        Approval.org_slug == org, Approval.model == model, Approval.use_case == use_case,
        Approval.status.in_(("requested", "approved")),
    )).scalars().first()
    if open_ is not None:
        what = f" for use case {use_case!r}" if use_case else ""
        raise Conflict(f"org {org!r} already has a {open_.status} request for {model!r}{what} ({open_.id})")
    now = utcnow()
    row = Approval(id=new_id("apr"), org_slug=org, model=model, use_case=use_case, status="requested",
                   requested_by=requested_by or "",
                   request_reason=reason or "", requested_at=now, decided_by="", decision_reason="",
                   decided_at=None, revoked_at=None, revoked_reason="")
    session.add(row)
    _event(session, row.id, "requested", requested_by, reason, now)
    session.flush()
    bump_version(session)
    view = _view(session, row, True)
    note(session, "approval.request", f"approval:{row.id}", org, None, view.to_json())
    return view


def _decide(session: Session, approval_id: str, status: str, by: str, reason: str) -> ApprovalView:
    row = _load(session, approval_id)
    if row.status != "requested":
        raise Conflict(f"approval request {approval_id} is {row.status}, not awaiting a decision")
    if status == "denied" and not (reason or "").strip():
        raise InvalidRequest("a denial needs a reason")
    now = utcnow()
    before = _view(session, row, True).to_json()
    row.status, row.decided_by, row.decision_reason, row.decided_at = status, by or "", reason or "", now
    _event(session, row.id, status, by, reason, now)
    session.flush()
    bump_version(session)
    view = _view(session, row, True)
    note(session, "approval.approve" if status == "approved" else "approval.deny", f"approval:{row.id}",
         row.org_slug, before, view.to_json())
    return view


def approve_request(session: Session, approval_id: str, by: str = "", reason: str = "") -> ApprovalView:
    """Approve a pending request: the org may use the model from the next snapshot on."""
    return _decide(session, approval_id, "approved", by, reason)


def deny_request(session: Session, approval_id: str, by: str = "", reason: str = "") -> ApprovalView:
    """Deny a pending request (a reason is required)."""
    return _decide(session, approval_id, "denied", by, reason)


def revoke_approval(session: Session, approval_id: str, by: str = "", reason: str = "") -> ApprovalView:
    """Withdraw an approved request; the approval's template link disappears at the next snapshot."""
    row = _load(session, approval_id)
    if row.status != "approved":
        raise Conflict(f"approval request {approval_id} is {row.status}; only an approved request can be revoked")
    if not (reason or "").strip():
        raise InvalidRequest("a revocation needs a reason")
    now = utcnow()
    before = _view(session, row, True).to_json()
    row.status, row.revoked_at, row.revoked_reason = "revoked", now, reason
    _event(session, row.id, "revoked", by, reason, now)
    session.flush()
    bump_version(session)
    view = _view(session, row, True)
    note(session, "approval.revoke", f"approval:{row.id}", row.org_slug, before, view.to_json())
    return view


def get_approval(session: Session, approval_id: str) -> ApprovalView:
    return _view(session, _load(session, approval_id), True)


def list_approvals(session: Session, org: str | None = None, status: str | None = None) -> list[ApprovalView]:
    """Approval requests, oldest first, optionally for one org and/or status."""
    if status is not None and status not in STATUSES:
        raise InvalidRequest(f"status must be one of {list(STATUSES)}")
    q = select(Approval).order_by(Approval.requested_at, Approval.id)
    if org:
        q = q.where(Approval.org_slug == org)
    if status:
        q = q.where(Approval.status == status)
    return [_view(session, a) for a in session.execute(q).scalars()]

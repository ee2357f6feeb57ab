"""Time-boxed grants: an org may use a model between two instants (e.g. a pre-release evaluation window).

A grant compiles to ``permit(principal in Org::"...", action, resource ==
Model::"...") when { context.now >= start && context.now < end }``, so it
opens and closes at its instants without a rebuild.  A grant permits; it does
not lift forbids (a directive or the approval-required rule still applies).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from clearance.audit.changes import note
from clearance.policy._views import check_org_and_model, iso, new_id
from clearance.policy.clock import utc, utcnow
from clearance.policy.errors import Conflict, InvalidRequest, NotFound
from clearance.policy.tables import Grant
from clearance.store.version import bump_version


@dataclass(frozen=True, slots=True)
class GrantView:
    id: str
    org: str
    model: str
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
    revoked_reason: str
    status: str  # "pending" | "open" | "closed" | "revoked"

    def to_json(self) -> dict:
        return {
            "id": self.id, "org": self.org, "model": self.model, "starts_at": iso(self.starts_at),
            "ends_at": iso(self.ends_at), "reason": self.reason, "created_by": self.created_by,
            "created_at": iso(self.created_at), "revoked_at": iso(self.revoked_at),
            "revoked_reason": self.revoked_reason, "status": self.status,
        }


def _view(g: Grant, as_of: datetime) -> GrantView:
    start, end = utc(g.starts_at), utc(g.ends_at)
    rev = utc(g.revoked_at) if g.revoked_at else None
    status = "revoked" if rev else "pending" if as_of < start else "closed" if as_of >= end else "open"
    return GrantView(g.id, g.org_slug, g.model, start, end, g.reason, g.created_by, utc(g.created_at), rev,
                     g.revoked_reason, status)


def add_grant(
    session: Session, org: str, model: str, starts_at: datetime, ends_at: datetime, reason: str = "",
    by: str = "", known_models: Collection[str] | None = None,
) -> GrantView:
    """Give ``org`` access to ``model`` from ``starts_at`` (inclusive) to ``ends_at`` (exclusive)."""
    check_org_and_model(session, org, model, known_models)
    start, end = utc(starts_at), utc(ends_at)
    if end <= start:
        raise InvalidRequest("a grant must end after it starts")
    now = utcnow()
    row = Grant(id=new_id("grt"), org_slug=org, model=model, starts_at=start, ends_at=end, reason=reason or "",
                created_by=by or "", created_at=now, revoked_at=None, revoked_reason="")
    session.add(row)
    session.flush()
    bump_version(session)
    view = _view(row, now)
    note(session, "grant.add", f"grant:{row.id}", org, None, view.to_json())
    return view


def revoke_grant(session: Session, grant_id: str, reason: str = "") -> GrantView:
    row = session.get(Grant, grant_id)
    if row is None:
        raise NotFound(f"no grant {grant_id!r}")
    if row.revoked_at is not None:
        raise Conflict(f"grant {grant_id} was already revoked")
    now = utcnow()
    before = _view(row, now).to_json()
    row.revoked_at, row.revoked_reason = now, reason or ""
    session.flush()
    bump_version(session)
    view = _view(row, now)
    note(session, "grant.revoke", f"grant:{grant_id}", row.org_slug, before, view.to_json())
    return view


def list_grants(session: Session, org: str | None = None) -> list[GrantView]:
    q = select(Grant).order_by(Grant.created_at, Grant.id)
    if org:
        q = q.where(Grant.org_slug == org)
    now = utcnow()
    return [_view(g, now) for g in session.execute(q).scalars()]

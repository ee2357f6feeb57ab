"""Directives: Cedar policies applied by an operator, in force from an instant until expiry or revocation.

A directive's time window is compiled into its policies as conditions on
``context.now``, so it comes into force (and lapses) at its instant on every
worker without a rebuild.  Applying or revoking bumps the control-plane
version in the same transaction, so every worker and replica recompiles
within one poll interval.  Rows are never deleted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from clearance.audit.changes import note
from clearance.policy._views import iso
from clearance.policy.cedartext import PolicyTextError, check_policy_text
from clearance.policy.clock import utc, utcnow
from clearance.policy.errors import Conflict, InvalidRequest, NotFound
from clearance.policy.tables import Directive
from clearance.store.version import bump_version

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True, slots=True)
class DirectiveView:
    """A directive as shown to operators; ``status`` is derived at ``as_of``."""

    id: str
    title: str
    authority: str
    reference: str
    text: str
    issued_at: datetime
    effective_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_reason: str
    status: str  # "pending" | "in_force" | "expired" | "revoked"

    def to_json(self) -> dict:
        return {
            "id": self.id, "title": self.title, "authority": self.authority, "reference": self.reference,
            "text": self.text, "issued_at": iso(self.issued_at), "effective_at": iso(self.effective_at),
            "expires_at": iso(self.expires_at), "revoked_at": iso(self.revoked_at),
            "revoked_reason": self.revoked_reason, "status": self.status,
        }


def _view(d: Directive, as_of: datetime) -> DirectiveView:
    eff = utc(d.effective_at)
    exp = utc(d.expires_at) if d.expires_at else None
    rev = utc(d.revoked_at) if d.revoked_at else None
    if rev is not None:
        status = "revoked"
    elif as_of < eff:
        status = "pending"
    elif exp is not None and as_of >= exp:
        status = "expired"
    else:
        status = "in_force"
    return DirectiveView(d.id, d.title, d.authority, d.reference, d.text, utc(d.issued_at), eff, exp, rev,
                         d.revoked_reason, status)


def validate_directive_text(text: str) -> None:
    """Check directive text: parses, matches the schema, no templates, no forbid that could fail open.

    Raises ``clearance.policy.cedartext.PolicyTextError`` (a ``ValueError``)
    whose ``problems`` give line and column.
    """
    check_policy_text(text, "directive")


def apply_directive(
    session: Session, text: str, id: str, title: str, authority: str = "", reference: str = "",
    effective_at: datetime | None = None, expires_at: datetime | None = None,
) -> DirectiveView:
    """Validate and store a directive; it is enforced from ``effective_at`` (default: now).

    Raises ``InvalidRequest`` (bad id, title, window or policy text, with line
    and column) or ``Conflict`` (the id was used before, even if revoked).
    The caller commits the session.
    """
    if not _ID.match(id or ""):
        raise InvalidRequest("directive id must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    if not (title or "").strip():
        raise InvalidRequest("directive title is required (it is shown to callers who are denied)")
    now = utcnow()
    eff = utc(effective_at) if effective_at else now
    exp = utc(expires_at) if expires_at else None
    if exp is not None and exp <= eff:
        raise InvalidRequest("expires_at must be after effective_at")
    try:
        validate_directive_text(text)
    except PolicyTextError as e:
        raise InvalidRequest(f"directive {id} rejected: " + "; ".join(str(p) for p in e.problems)) from None
    if session.get(Directive, id) is not None:
        raise Conflict(f"directive {id!r} already exists; directive ids are never reused (revoke it and use a new id)")
    row = Directive(id=id, title=title.strip(), authority=authority or "", reference=reference or "", text=text,
                    issued_at=now, effective_at=eff, expires_at=exp, revoked_at=None, revoked_reason="")
    session.add(row)
    session.flush()
    bump_version(session)
    view = _view(row, now)
    note(session, "directive.apply", f"directive:{id}", "", None, view.to_json())
    return view


def revoke_directive(session: Session, id: str, reason: str = "") -> DirectiveView:
    """Mark a directive revoked (it stops applying at the next snapshot).  The caller commits."""
    row = session.get(Directive, id)
    if row is None:
        raise NotFound(f"no directive {id!r}")
    if row.revoked_at is not None:
        raise Conflict(f"directive {id!r} was already revoked")
    now = utcnow()
    before = _view(row, now).to_json()
    row.revoked_at = now
    row.revoked_reason = reason or ""
    session.flush()
    bump_version(session)
    view = _view(row, now)
    note(session, "directive.revoke", f"directive:{id}", "", before, view.to_json())
    return view


def get_directive(session: Session, id: str) -> DirectiveView:
    row = session.get(Directive, id)
    if row is None:
        raise NotFound(f"no directive {id!r}")
    return _view(row, utcnow())


def list_directives(session: Session, include_inactive: bool = True) -> list[DirectiveView]:
    """Every directive ever applied (oldest first), or only those pending or in force."""
    now = utcnow()
    rows = session.execute(select(Directive).order_by(Directive.issued_at, Directive.id)).scalars()
    views = [_view(r, now) for r in rows]
    if not include_inactive:
        views = [v for v in views if v.status in ("pending", "in_force")]
    return views

"""Set, list and remove usage limits (CLI and admin API).

``set_limit`` creates the limit of a (scope, subject, model) or replaces its
values; every change bumps the state version, so gateways enforce it within a
poll interval, and is noted for the audit log (``audit/changes.py``).  Errors are ``LimitError`` with a message fit for an operator.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from clearance.audit import changes
from clearance.identity.tables import ApiKey, Org, OrgGroup, User
from clearance.limits.tables import UsageLimit
from clearance.store.version import bump_version

SCOPES = {"key": ApiKey, "user": User, "org": Org, "group": OrgGroup, "all": None}
AMOUNTS = ("requests_per_minute", "tokens_per_minute", "tokens_per_day", "spend_per_month_usd")


class LimitError(Exception):
    pass


@dataclass(frozen=True)
class LimitView:
    id: str
    scope: str
    subject: str
    model: str
    requests_per_minute: int | None
    tokens_per_minute: int | None
    tokens_per_day: int | None
    spend_per_month_usd: float | None
    on_store_error: str

    @classmethod
    def of(cls, row: UsageLimit) -> "LimitView":
        spend = row.spend_per_month_micro_usd
        return cls(row.id, row.scope, row.subject, row.model, row.requests_per_minute, row.tokens_per_minute,
                   row.tokens_per_day, None if spend is None else spend / 1e6, row.on_store_error)

    def to_json(self) -> dict:
        return dict(self.__dict__)


def set_limit(session: Session, *, scope: str, subject: str = "", model: str = "", by: str = "",
              on_store_error: str = "deny", **amounts: float | int | None) -> LimitView:
    """Create or replace the limit of (scope, subject, model); amounts left None are not limited."""
    if scope not in SCOPES:
        raise LimitError(f"unknown scope {scope!r}: one of {', '.join(SCOPES)}")
    if scope == "all":
        subject = ""
    elif not subject:
        raise LimitError(f"a {scope} limit needs its {scope}")
    elif session.get(SCOPES[scope], subject) is None:
        raise LimitError(f"no {scope} {subject!r}")
    if on_store_error not in ("deny", "allow"):
        raise LimitError("on_store_error must be 'deny' or 'allow'")
    unknown = set(amounts) - set(AMOUNTS)
    if unknown:
        raise LimitError(f"unknown amounts {sorted(unknown)}")
    for name, value in amounts.items():
        if value is not None and (isinstance(value, bool) or value < 0):
            raise LimitError(f"{name} must be a non-negative number")
    if all(amounts.get(a) is None for a in AMOUNTS):
        raise LimitError("give at least one of --requests-per-minute, --tokens-per-minute, --tokens-per-day, "
                         "--spend-per-month")
    row = session.scalars(select(UsageLimit).where(UsageLimit.scope == scope, UsageLimit.subject == subject,
                                                   UsageLimit.model == model)).first()
    before = LimitView.of(row).to_json() if row is not None else None
    if row is None:
        row = UsageLimit(id="lim_" + secrets.token_hex(6), scope=scope, subject=subject, model=model,
                         created_at=datetime.now(timezone.utc), created_by=by)
        session.add(row)
    row.requests_per_minute = _int(amounts.get("requests_per_minute"))
    row.tokens_per_minute = _int(amounts.get("tokens_per_minute"))
    row.tokens_per_day = _int(amounts.get("tokens_per_day"))
    spend = amounts.get("spend_per_month_usd")
    row.spend_per_month_micro_usd = None if spend is None else round(float(spend) * 1e6)
    row.on_store_error = on_store_error
    session.flush()
    bump_version(session)
    view = LimitView.of(row)
    changes.note(session, "limit.set", f"limit:{view.id}", subject if scope == "org" else "", before, view.to_json())
    return view


def _int(v: float | int | None) -> int | None:
    return None if v is None else int(v)


def list_limits(session: Session) -> list[LimitView]:
    return [LimitView.of(r) for r in session.scalars(select(UsageLimit).order_by(UsageLimit.scope,
                                                                                 UsageLimit.subject,
                                                                                 UsageLimit.model))]


def remove_limit(session: Session, limit_id: str) -> LimitView:
    row = session.get(UsageLimit, limit_id)
    if row is None:
        raise LimitError(f"no limit {limit_id!r}")
    view = LimitView.of(row)
    session.delete(row)
    bump_version(session)
    changes.note(session, "limit.remove", f"limit:{view.id}", view.subject if view.scope == "org" else "",
                 view.to_json(), None)
    return view

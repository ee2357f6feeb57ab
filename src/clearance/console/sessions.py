"""Console sign-in: server-side sessions bound to an administrator, and their CSRF tokens.

A session id is 32 random bytes, sent only in an HttpOnly, SameSite=Strict
cookie (Secure over https); the store keeps its SHA-256.  A session is bound
to the administrator and to the id of the token it signed in with: rotating
the token, disabling or expiring the administrator ends it, as do sign-out,
``idle_minutes`` without a request and ``session_hours`` after sign-in.
Every POST carries the session's CSRF token (a form field or the
``X-CSRF-Token`` header htmx sends), compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import DateTime, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from clearance.identity import admins
from clearance.identity.roles import Actor
from clearance.identity.tables import Admin
from clearance.store.base import Base

COOKIE = "clearance_console"
_TOUCH_EVERY = timedelta(seconds=30)  # last_seen_at is written at most this often


class ConsoleSession(Base):
    __tablename__ = "console_sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    admin: Mapped[str] = mapped_column(String(64), index=True)
    token_id: Mapped[str] = mapped_column(String(32))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


@dataclass(frozen=True)
class SignedIn:
    """A live session: who, its CSRF token, and when it ends at the latest."""

    actor: Actor
    csrf: str
    expires_at: datetime


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def sign_in(session: Session, token: str, hours: float) -> tuple[str, Actor]:
    """Check an administrator token and open a session; ``(session id, actor)``.

    Raises ``admins.AdminAuthError`` (unknown, disabled or expired token).  The caller commits.
    """
    actor = admins.authenticate(session, token.strip())
    row = session.get(Admin, actor.name)
    now = _now()
    # Sessions that ended or expired more than a month ago are forgotten (their sign-ins stay in the audit log).
    session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now - timedelta(days=30)))
    sid = secrets.token_urlsafe(32)
    session.add(ConsoleSession(id_hash=_hash(sid), admin=actor.name, token_id=row.token_id,
                               csrf=secrets.token_urlsafe(32), created_at=now, last_seen_at=now,
                               expires_at=now + timedelta(hours=hours), ended_at=None))
    return sid, actor


def lookup(session: Session, session_id: str, idle_minutes: float, now: datetime | None = None) -> SignedIn | None:
    """The live session behind a cookie value, or None (unknown, ended, idle, expired, or its admin lapsed)."""
    if not session_id or len(session_id) > 128:
        return None
    now = now or _now()
    row = session.get(ConsoleSession, _hash(session_id))
    if row is None or row.ended_at is not None:
        return None
    if now >= _utc(row.expires_at) or now - _utc(row.last_seen_at) >= timedelta(minutes=idle_minutes):
        row.ended_at = now
        session.commit()
        return None
    admin = session.get(Admin, row.admin)
    if admin is None or admin.disabled_at is not None or admin.token_id != row.token_id:
        return None
    if admin.expires_at is not None and _utc(admin.expires_at) <= now:
        return None
    if now - _utc(row.last_seen_at) >= _TOUCH_EVERY:
        row.last_seen_at = now
        session.commit()
    return SignedIn(Actor(admin.name, admin.role, admin.org_slug), row.csrf, _utc(row.expires_at))


def sign_out(session: Session, session_id: str) -> str | None:
    """End the session; the administrator's name, or None when there was no live session.  The caller commits."""
    row = session.get(ConsoleSession, _hash(session_id or ""))
    if row is None or row.ended_at is not None:
        return None
    row.ended_at = _now()
    return row.admin


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), given.encode())


def active_sessions(session: Session) -> list[ConsoleSession]:
    """Sessions not ended and not past their absolute expiry (idle ones included until next seen)."""
    now = _now()
    rows = session.scalars(select(ConsoleSession).where(ConsoleSession.ended_at.is_(None))
                           .order_by(ConsoleSession.created_at))
    return [r for r in rows if _utc(r.expires_at) > now]

"""Named administrators: add, list, disable, rotate their tokens, and authenticate them.

An administrator's token is ``clra_<token id>_<secret>``; only its SHA-256 is
stored, and it expires (90 days by default).  The CLI, working on the
database directly, acts as ``local_actor()``: an operator named after the OS
user, whose changes are logged under that name.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from clearance.audit.changes import note
from clearance.identity.roles import ROLES, Actor
from clearance.identity.service import SLUG, IdentityError, get_org, utcnow
from clearance.identity.tables import Admin

PREFIX = "clra_"
DEFAULT_LIFETIME = timedelta(days=90)


@dataclass(frozen=True)
class CreatedAdmin:
    name: str
    role: str
    org: str | None
    token: str  # shown once, never stored
    expires_at: datetime | None


def local_actor() -> Actor:
    """The operator the CLI acts as: named after the OS user."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in this environment
        user = "unknown"
    return Actor(f"local:{user}", "operator")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token() -> tuple[str, str]:
    token_id = "a" + secrets.token_hex(6)
    return token_id, f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"


def admin_state(a: Admin) -> dict:
    return {"name": a.name, "role": a.role, "org": a.org_slug, "token_id": a.token_id,
            "expires_at": a.expires_at.isoformat() if a.expires_at else None, "disabled": a.disabled_at is not None}


def add_admin(session: Session, name: str, role: str, *, org: str | None = None, created_by: str = "",
              lifetime: timedelta | None = DEFAULT_LIFETIME) -> CreatedAdmin:
    """Create an administrator and its token (returned once)."""
    if not SLUG.match(name or ""):
        raise IdentityError(f"invalid admin name {name!r}: use lowercase letters, digits, '.', '_' or '-' (max 64)")
    if role not in ROLES:
        raise IdentityError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if role == "org-admin":
        if not org:
            raise IdentityError("an org-admin needs an org (--org SLUG)")
        get_org(session, org)
    elif org:
        raise IdentityError(f"only an org-admin belongs to an org, not a {role}")
    if session.get(Admin, name) is not None:
        raise IdentityError(f"admin {name!r} already exists", 409)
    token_id, token = _new_token()
    now = utcnow()
    expires = now + lifetime if lifetime else None
    row = Admin(name=name, role=role, org_slug=org or None, token_id=token_id, token_hash=_hash(token),
                created_at=now, created_by=created_by, expires_at=expires)
    session.add(row)
    session.flush()
    note(session, "admin.add", f"admin:{name}", org or "", None, admin_state(row))
    return CreatedAdmin(name, role, org or None, token, expires)


def rotate_token(session: Session, name: str, lifetime: timedelta | None = DEFAULT_LIFETIME) -> CreatedAdmin:
    """Replace an administrator's token (the old one stops working at once)."""
    row = get_admin(session, name)
    before = admin_state(row)
    token_id, token = _new_token()
    row.token_id, row.token_hash = token_id, _hash(token)
    row.expires_at = utcnow() + lifetime if lifetime else None
    note(session, "admin.rotate", f"admin:{name}", row.org_slug or "", before, admin_state(row))
    return CreatedAdmin(row.name, row.role, row.org_slug, token, row.expires_at)


def set_admin_disabled(session: Session, name: str, disabled: bool) -> Admin:
    row = get_admin(session, name)
    before = admin_state(row)
    row.disabled_at = (row.disabled_at or utcnow()) if disabled else None
    note(session, "admin.disable" if disabled else "admin.enable", f"admin:{name}", row.org_slug or "", before,
         admin_state(row))
    return row


def get_admin(session: Session, name: str) -> Admin:
    row = session.get(Admin, name)
    if row is None:
        raise IdentityError(f"unknown admin {name!r}", 404)
    return row


def list_admins(session: Session) -> list[Admin]:
    return list(session.scalars(select(Admin).order_by(Admin.name)))


def has_operator(session: Session) -> bool:
    """Whether an enabled operator exists (after which the shared token can no longer create one)."""
    q = select(Admin.name).where(Admin.role == "operator", Admin.disabled_at.is_(None)).limit(1)
    return session.scalars(q).first() is not None


class AdminAuthError(Exception):
    """The presented admin token is not valid; the message says why without echoing it."""


def authenticate(session: Session, token: str, now: datetime | None = None) -> Actor:
    """The administrator whose token this is; ``AdminAuthError`` when unknown, disabled or expired."""
    if not token.startswith(PREFIX):
        raise AdminAuthError("invalid admin token")
    digest = _hash(token)
    row = session.scalars(select(Admin).where(Admin.token_hash == digest)).first()
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        raise AdminAuthError("invalid admin token")
    if row.disabled_at is not None:
        raise AdminAuthError(f"administrator {row.name!r} is disabled")
    now = now or datetime.now(timezone.utc)
    if row.expires_at is not None:
        exp = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=timezone.utc)
        if exp <= now:
            raise AdminAuthError(f"the token of administrator {row.name!r} has expired; rotate it")
    return Actor(row.name, row.role, row.org_slug)

"""Create, list and revoke organisations, org groups, users and API keys.

Used by the CLI, the admin API and the demo.  Every change bumps the state
version in the same transaction, so running gateways pick it up at once.
Errors are raised as ``IdentityError`` with a message fit for an operator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from clearance.identity.keys import hash_key, new_key
from clearance.identity.tables import ApiKey, Org, OrgGroup, OrgGroupMember, User
from clearance.store.version import bump_version

SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
COUNTRY = re.compile(r"^[A-Z]{2}$")


class IdentityError(Exception):
    pass


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _check_slug(kind: str, value: str) -> None:
    if not SLUG.match(value):
        raise IdentityError(f"invalid {kind} {value!r}: use lowercase letters, digits, '.', '_' or '-' (max 64)")


def add_org(session: Session, slug: str, name: str = "", groups: list[str] | tuple[str, ...] = ()) -> Org:
    _check_slug("org", slug)
    if session.get(Org, slug) is not None:
        raise IdentityError(f"org {slug!r} already exists")
    org = Org(slug=slug, name=name or slug, created_at=utcnow())
    session.add(org)
    session.flush()
    for g in groups:
        add_org_to_group(session, slug, g)
    bump_version(session)
    return org


def add_org_to_group(session: Session, org: str, group: str) -> None:
    _check_slug("group", group)
    if session.get(Org, org) is None:
        raise IdentityError(f"unknown org {org!r}")
    if session.get(OrgGroup, group) is None:
        session.add(OrgGroup(slug=group, name=group))
        session.flush()
    if session.get(OrgGroupMember, (org, group)) is None:
        session.add(OrgGroupMember(org_slug=org, group_slug=group))
    bump_version(session)


def remove_org_from_group(session: Session, org: str, group: str) -> None:
    member = session.get(OrgGroupMember, (org, group))
    if member is None:
        raise IdentityError(f"org {org!r} is not in group {group!r}")
    session.delete(member)
    bump_version(session)


def add_user(session: Session, user_id: str, org: str, *, nationality: str = "", us_person: bool = False,
             verified: bool = False, email: str = "") -> User:
    _check_slug("user id", user_id)
    nationality = nationality.upper()
    if nationality and not COUNTRY.match(nationality):
        raise IdentityError(f"nationality must be an ISO 3166 alpha-2 code, got {nationality!r}")
    if session.get(Org, org) is None:
        raise IdentityError(f"unknown org {org!r}")
    if session.get(User, user_id) is not None:
        raise IdentityError(f"user {user_id!r} already exists")
    user = User(id=user_id, org_slug=org, email=email, nationality=nationality, us_person=us_person,
                verified=verified, created_at=utcnow(), attributes={})
    session.add(user)
    bump_version(session)
    return user


@dataclass(frozen=True)
class CreatedKey:
    key_id: str
    key: str  # shown once, never stored
    user_id: str
    expires_at: datetime | None


def create_key(session: Session, user_id: str, *, name: str = "", use_case: str = "",
               expires_at: datetime | None = None) -> CreatedKey:
    if session.get(User, user_id) is None:
        raise IdentityError(f"unknown user {user_id!r}")
    if expires_at is not None and expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=timezone.utc)
    key_id, key = new_key()
    session.add(ApiKey(id=key_id, user_id=user_id, key_hash=hash_key(key), name=name, use_case=use_case,
                       created_at=utcnow(), expires_at=expires_at))
    bump_version(session)
    return CreatedKey(key_id, key, user_id, expires_at)


def revoke_key(session: Session, key_id: str) -> None:
    key = session.get(ApiKey, key_id)
    if key is None:
        raise IdentityError(f"unknown key {key_id!r}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        bump_version(session)


def list_keys(session: Session, user_id: str | None = None) -> list[ApiKey]:
    q = select(ApiKey).order_by(ApiKey.created_at)
    if user_id:
        q = q.where(ApiKey.user_id == user_id)
    return list(session.scalars(q))


def list_orgs(session: Session) -> list[tuple[Org, list[str]]]:
    groups: dict[str, list[str]] = {}
    for m in session.scalars(select(OrgGroupMember)):
        groups.setdefault(m.org_slug, []).append(m.group_slug)
    return [(o, sorted(groups.get(o.slug, []))) for o in session.scalars(select(Org).order_by(Org.slug))]


def list_users(session: Session, org: str | None = None) -> list[User]:
    q = select(User).order_by(User.id)
    if org:
        q = q.where(User.org_slug == org)
    return list(session.scalars(q))

"""Create, change, disable and list organisations, org groups, users and API keys.

Used by the CLI, the admin API, the OIDC token path and the demo.  Every
change bumps the state version in the same transaction, so running gateways
pick it up within their poll interval, and notes itself for the audit log
(``clearance.audit.changes``) with digests of the object's state before and
after.  Errors are raised as ``IdentityError`` with a message fit for an
operator.

Lifecycle: an org or user can be disabled and enabled again; deleting a user
leaves a tombstone (the id is never reused) and revokes its keys.
Nationality is an ISO 3166 alpha-2 code known to ``pycountry``; a US national
is a US person unless the caller confirms otherwise
(``not_us_person_confirmed``), since storing ``us_person=false`` for a US
national by accident would widen what export-control rules let through.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

import pycountry
from sqlalchemy import select
from sqlalchemy.orm import Session

from clearance.audit.changes import note
from clearance.identity.keys import hash_key, new_key
from clearance.identity.tables import ApiKey, Org, OrgGroup, OrgGroupMember, User
from clearance.store.version import bump_version

SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
COUNTRY = re.compile(r"^[A-Z]{2}$")
UNSET = object()  # "leave as it is", for update arguments that may be set to None


class IdentityError(Exception):
    """A change that cannot be made; ``status`` is what the admin API answers (400, 404 or 409)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def check_nationality(code: str) -> str:
    """The upper-cased ISO 3166 alpha-2 code, or ``IdentityError`` if no such country exists ("" stays "")."""
    code = (code or "").strip().upper()
    if not code:
        return ""
    if not COUNTRY.match(code) or pycountry.countries.get(alpha_2=code) is None:
        raise IdentityError(f"nationality {code!r} is not an ISO 3166 alpha-2 country code (e.g. US, GB, DE)")
    return code


def check_us_person(nationality: str, us_person: bool, not_us_person_confirmed: bool) -> None:
    """A US national who is not a US person must be confirmed explicitly."""
    if nationality == "US" and not us_person and not not_us_person_confirmed:
        raise IdentityError("a US national is a US person: pass us_person=true, or confirm that this US national "
                            "is not a US person (--not-us-person-confirmed / not_us_person_confirmed=true)")


def _aware(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _iso(t: datetime | None) -> str | None:
    return _aware(t).isoformat() if t is not None else None


def org_state(o: Org, groups: list[str] | None = None) -> dict:
    return {"slug": o.slug, "name": o.name, "disabled": o.disabled_at is not None,
            **({"groups": sorted(groups)} if groups is not None else {})}


def user_state(u: User) -> dict:
    """The user's attributes as the admin API shows them (and as change digests are computed)."""
    return {"id": u.id, "org": u.org_slug, "email": u.email, "nationality": u.nationality,
            "us_person": bool(u.us_person), "verified": bool(u.verified), "verified_until": _iso(u.verified_until),
            "disabled": u.disabled_at is not None, "deleted": u.deleted_at is not None, "source": u.source or ""}


def key_state(k: ApiKey) -> dict:
    return {"key_id": k.id, "user": k.user_id, "use_case": k.use_case, "name": k.name,
            "expires_at": _iso(k.expires_at), "revoked": k.revoked_at is not None}


def get_org(session: Session, slug: str) -> Org:
    org = session.get(Org, slug)
    if org is None:
        raise IdentityError(f"unknown org {slug!r}", 404)
    return org


def get_user(session: Session, user_id: str, *, allow_deleted: bool = False) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise IdentityError(f"unknown user {user_id!r}", 404)
    if user.deleted_at is not None and not allow_deleted:
        raise IdentityError(f"user {user_id!r} has been deleted", 409)
    return user


def _org_groups(session: Session, slug: str) -> list[str]:
    return sorted(m.group_slug for m in session.scalars(select(OrgGroupMember).where(OrgGroupMember.org_slug == slug)))


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _check_slug(kind: str, value: str) -> None:
    if not SLUG.match(value):
        raise IdentityError(f"invalid {kind} {value!r}: use lowercase letters, digits, '.', '_' or '-' (max 64)")


def add_org(session: Session, slug: str, name: str = "", groups: list[str] | tuple[str, ...] = ()) -> Org:
    _check_slug("org", slug)
    if session.get(Org, slug) is not None:
        raise IdentityError(f"org {slug!r} already exists", 409)
    org = Org(slug=slug, name=name or slug, created_at=utcnow())
    session.add(org)
    session.flush()
    for g in groups:
        add_org_to_group(session, slug, g)
    note(session, "org.add", f"org:{slug}", slug, None, org_state(org, list(groups)))
    bump_version(session)
    return org


def update_org(session: Session, slug: str, *, name: str | None = None) -> Org:
    org = get_org(session, slug)
    before = org_state(org)
    if name is not None:
        org.name = name
    note(session, "org.update", f"org:{slug}", slug, before, org_state(org))
    bump_version(session)
    return org


def set_org_disabled(session: Session, slug: str, disabled: bool) -> Org:
    """Disable (every user of the org is refused) or enable an org."""
    org = get_org(session, slug)
    before = org_state(org)
    if disabled and org.disabled_at is None:
        org.disabled_at = utcnow()
    elif not disabled:
        org.disabled_at = None
    note(session, "org.disable" if disabled else "org.enable", f"org:{slug}", slug, before, org_state(org))
    bump_version(session)
    return org


def add_org_to_group(session: Session, org: str, group: str) -> None:
    _check_slug("group", group)
    get_org(session, org)
    if session.get(OrgGroup, group) is None:
        session.add(OrgGroup(slug=group, name=group))
        session.flush()
    if session.get(OrgGroupMember, (org, group)) is None:
        session.add(OrgGroupMember(org_slug=org, group_slug=group))
        note(session, "org.join", f"org:{org}", org, None, {"org": org, "group": group})
    bump_version(session)


def remove_org_from_group(session: Session, org: str, group: str) -> None:
    member = session.get(OrgGroupMember, (org, group))
    if member is None:
        raise IdentityError(f"org {org!r} is not in group {group!r}", 404)
    session.delete(member)
    note(session, "org.leave", f"org:{org}", org, {"org": org, "group": group}, None)
    bump_version(session)


def add_user(session: Session, user_id: str, org: str, *, nationality: str = "", us_person: bool = False,
             verified: bool = False, email: str = "", verified_until: datetime | None = None,
             not_us_person_confirmed: bool = False, source: str = "") -> User:
    _check_slug("user id", user_id)
    nationality = check_nationality(nationality)
    check_us_person(nationality, us_person, not_us_person_confirmed)
    get_org(session, org)
    existing = session.get(User, user_id)
    if existing is not None:
        gone = " (deleted; ids are never reused)" if existing.deleted_at is not None else ""
        raise IdentityError(f"user {user_id!r} already exists{gone}", 409)
    user = User(id=user_id, org_slug=org, email=email, nationality=nationality, us_person=us_person,
                verified=verified, verified_until=_aware(verified_until), created_at=utcnow(), attributes={},
                source=source)
    session.add(user)
    note(session, "user.add", f"user:{user_id}", org, None, user_state(user))
    bump_version(session)
    return user


def update_user(session: Session, user_id: str, *, nationality: str | None = None, us_person: bool | None = None,
                verified: bool | None = None, verified_until=UNSET, email: str | None = None,
                not_us_person_confirmed: bool = False, action: str = "user.update") -> User:
    """Change a user's attributes; ``None`` (or ``UNSET`` for ``verified_until``) leaves one as it is."""
    user = get_user(session, user_id)
    before = user_state(user)
    nat = check_nationality(nationality) if nationality is not None else user.nationality
    usp = bool(user.us_person) if us_person is None else us_person
    if nationality is not None or us_person is not None:
        check_us_person(nat, usp, not_us_person_confirmed)
    user.nationality, user.us_person = nat, usp
    if verified is not None:
        user.verified = verified
    if verified_until is not UNSET:
        user.verified_until = _aware(verified_until)
    if email is not None:
        user.email = email
    after = user_state(user)
    if after != before:
        note(session, action, f"user:{user_id}", user.org_slug, before, after)
        bump_version(session)
    return user


def set_user_disabled(session: Session, user_id: str, disabled: bool) -> User:
    """Disable (all of the user's keys and tokens are refused) or enable a user."""
    user = get_user(session, user_id)
    before = user_state(user)
    if disabled and user.disabled_at is None:
        user.disabled_at = utcnow()
    elif not disabled:
        user.disabled_at = None
    note(session, "user.disable" if disabled else "user.enable", f"user:{user_id}", user.org_slug, before,
         user_state(user))
    bump_version(session)
    return user


def delete_user(session: Session, user_id: str) -> User:
    """Tombstone a user: it stays in the store (its id is never reused) and every key it had is revoked."""
    user = get_user(session, user_id)
    before = user_state(user)
    now = utcnow()
    user.deleted_at = now
    for k in session.scalars(select(ApiKey).where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))):
        k.revoked_at = now
        note(session, "key.revoke", f"key:{k.id}", user.org_slug, {**key_state(k), "revoked": False}, key_state(k))
    note(session, "user.delete", f"user:{user_id}", user.org_slug, before, user_state(user))
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
    user = get_user(session, user_id)
    if expires_at is not None and expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=timezone.utc)
    key_id, key = new_key()
    row = ApiKey(id=key_id, user_id=user_id, key_hash=hash_key(key), name=name, use_case=use_case,
                 created_at=utcnow(), expires_at=expires_at)
    session.add(row)
    note(session, "key.create", f"key:{key_id}", user.org_slug, None, key_state(row))
    bump_version(session)
    return CreatedKey(key_id, key, user_id, expires_at)


def revoke_key(session: Session, key_id: str) -> None:
    key = get_key(session, key_id)
    if key.revoked_at is None:
        before = key_state(key)
        key.revoked_at = utcnow()
        user = session.get(User, key.user_id)
        note(session, "key.revoke", f"key:{key_id}", user.org_slug if user else "", before, key_state(key))
        bump_version(session)


def get_key(session: Session, key_id: str) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None:
        raise IdentityError(f"unknown key {key_id!r}", 404)
    return key


def list_keys(session: Session, user_id: str | None = None, org: str | None = None) -> list[ApiKey]:
    q = select(ApiKey).order_by(ApiKey.created_at)
    if user_id:
        q = q.where(ApiKey.user_id == user_id)
    if org:
        q = q.join(User, User.id == ApiKey.user_id).where(User.org_slug == org)
    return list(session.scalars(q))


def list_orgs(session: Session) -> list[tuple[Org, list[str]]]:
    groups: dict[str, list[str]] = {}
    for m in session.scalars(select(OrgGroupMember)):
        groups.setdefault(m.org_slug, []).append(m.group_slug)
    return [(o, sorted(groups.get(o.slug, []))) for o in session.scalars(select(Org).order_by(Org.slug))]


def list_users(session: Session, org: str | None = None, include_deleted: bool = False) -> list[User]:
    q = select(User).order_by(User.id)
    if org:
        q = q.where(User.org_slug == org)
    if not include_deleted:
        q = q.where(User.deleted_at.is_(None))
    return list(session.scalars(q))

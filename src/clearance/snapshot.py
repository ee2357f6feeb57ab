"""The immutable snapshot that every request reads, and the watcher that swaps it.

A ``Snapshot`` is compiled from the store and the policy files: the key
index (hash of key -> principal, with the refusal a disabled or deleted user
or a disabled org earns), the users and orgs (what OIDC tokens are checked
against), the models and their routes, and the compiled policy.  It is identified by a content hash that goes into every
audit entry.  Requests never query the database or parse policy text: they
read ``SnapshotHolder.current``, which a background task replaces atomically
when the store's version row moves.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from clearance.config import Config, ModelSettings
from clearance.identity.tables import ApiKey, Org, OrgGroupMember, User
from clearance.limits.rules import LimitIndex, load_limits
from clearance.store.version import current_version
from clearance.types import Decision, Principal, Reason

log = logging.getLogger("clearance.snapshot")


class PolicyContext(Protocol):
    now: datetime
    use_case: str
    guard: dict[str, float]


class Policy(Protocol):
    """What the pipeline needs of the compiled policy (see ``policy/engine.py``)."""

    hash: str

    def decide(self, principal: Principal, model: str, context) -> Decision: ...

    def allowed_models(self, principal: Principal, now: datetime, use_case: str) -> list[str]: ...


@dataclass(frozen=True)
class AllowAll:
    """The policy when ``policy.enabled`` is false: every known model is allowed."""

    models: tuple[str, ...]
    hash: str = "policy-disabled"

    def decide(self, principal: Principal, model: str, context) -> Decision:
        return Decision(True, (Reason("policy-disabled", "Policy evaluation is disabled", "system"),),
                        snapshot_hash=self.hash)

    def allowed_models(self, principal: Principal, now: datetime, use_case: str) -> list[str]:
        return list(self.models)


@dataclass(frozen=True)
class DenyAll:
    """The policy when compiling failed: fail closed, saying why."""

    error: str
    hash: str = "policy-error"

    def decide(self, principal: Principal, model: str, context) -> Decision:
        return Decision(False, (Reason("policy-unavailable", "Policy could not be compiled", "system"),),
                        errors=(self.error,), snapshot_hash=self.hash)

    def allowed_models(self, principal: Principal, now: datetime, use_case: str) -> list[str]:
        return []


@dataclass(frozen=True)
class KeyRecord:
    principal: Principal
    expires_at: datetime | None
    revoked: bool
    refusal: str = ""  # "user_disabled", "user_deleted" or "org_disabled": refused whatever the key's state


@dataclass(frozen=True)
class UserRecord:
    """A stored user, as the token path needs it (``verified`` as of the snapshot's build)."""

    org: str
    nationality: str
    us_person: bool
    verified: bool
    verified_until: datetime | None
    email: str
    refusal: str
    source: str


@dataclass(frozen=True)
class OrgRecord:
    groups: tuple[str, ...]
    disabled: bool


@dataclass(frozen=True)
class Snapshot:
    version: int
    hash: str
    keys: dict[str, KeyRecord]
    models: dict[str, ModelSettings]
    policy: Policy
    limits: LimitIndex = field(default_factory=LimitIndex)
    built_at: float = 0.0
    errors: tuple[str, ...] = field(default_factory=tuple)
    users: dict[str, UserRecord] = field(default_factory=dict)
    orgs: dict[str, OrgRecord] = field(default_factory=dict)
    # The next instant (epoch seconds) a user's verification lapses: the snapshot is rebuilt then.
    lapses_at: float | None = None


def _orgs(session: Session) -> dict[str, OrgRecord]:
    groups: dict[str, list[str]] = {}
    for m in session.scalars(select(OrgGroupMember)):
        groups.setdefault(m.org_slug, []).append(m.group_slug)
    return {o.slug: OrgRecord(tuple(sorted(groups.get(o.slug, []))), o.disabled_at is not None)
            for o in session.scalars(select(Org))}


def _refusal(u: User, orgs: dict[str, OrgRecord]) -> str:
    if u.deleted_at is not None:
        return "user_deleted"
    if u.disabled_at is not None:
        return "user_disabled"
    org = orgs.get(u.org_slug)
    if org is None or org.disabled:
        return "org_disabled"
    return ""


def _users(session: Session, orgs: dict[str, OrgRecord]) -> dict[str, UserRecord]:
    now = time.time()
    return {u.id: UserRecord(u.org_slug, u.nationality or "", bool(u.us_person),
                             bool(u.verified) and (u.verified_until is None or _epoch(u.verified_until) > now),
                             u.verified_until, u.email or "", _refusal(u, orgs), u.source or "")
            for u in session.scalars(select(User))}


def _principals(session: Session, orgs: dict[str, OrgRecord], records: dict[str, UserRecord]
                ) -> dict[str, KeyRecord]:
    users = {u.id: u for u in session.scalars(select(User))}
    out: dict[str, KeyRecord] = {}
    for k in session.scalars(select(ApiKey)):
        u = users.get(k.user_id)
        if u is None:
            continue
        org = orgs.get(u.org_slug)
        r = records[u.id]
        p = Principal(key_id=k.id, user_id=u.id, org_id=u.org_slug, groups=org.groups if org else (),
                      nationality=u.nationality, us_person=bool(u.us_person), verified=r.verified,
                      use_case=k.use_case or "")
        out[k.key_hash] = KeyRecord(p, k.expires_at, k.revoked_at is not None, r.refusal)
    return out


def _epoch(t: datetime) -> float:
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()


def _compile_policy(session: Session, config: Config) -> Policy:
    if not config.policy.enabled:
        return AllowAll(tuple(m.name for m in config.models))
    from clearance.policy.engine import compile_policy

    return compile_policy(session, config)


def build_snapshot(sessions: sessionmaker[Session], config: Config) -> Snapshot:
    with sessions() as session:
        version = current_version(session)
        orgs = _orgs(session)
        users = _users(session, orgs)
        keys = _principals(session, orgs, users)
        limits = load_limits(session)
        errors: tuple[str, ...] = ()
        try:
            policy = _compile_policy(session, config)
        except Exception as e:  # fail closed: a broken policy denies everything, with the reason
            log.error("policy compile failed", extra={"error": str(e)})
            policy = DenyAll(str(e))
            errors = (str(e),)
    h = hashlib.sha256()
    h.update(policy.hash.encode())
    for kh in sorted(keys):
        r = keys[kh]
        h.update(f"{kh}|{r.principal}|{r.expires_at}|{r.revoked}|{r.refusal}".encode())
    for uid in sorted(users):
        h.update(f"{uid}|{users[uid]}".encode())
    for slug in sorted(orgs):
        h.update(f"{slug}|{orgs[slug]}".encode())
    for m in config.models:
        h.update(m.model_dump_json().encode())
    h.update(limits.digest().encode())
    now = time.time()
    lapses = [t for r in users.values() if r.verified and r.verified_until is not None
              and (t := _epoch(r.verified_until)) > now]
    return Snapshot(version=version, hash=h.hexdigest()[:16], keys=keys, lapses_at=min(lapses, default=None),
                    models={m.name: m for m in config.models}, policy=policy, limits=limits, built_at=time.time(),
                    errors=errors, users=users, orgs=orgs)


class SnapshotHolder:
    """Holds the current snapshot and rebuilds it when the store's version moves."""

    def __init__(self, sessions: sessionmaker[Session], config: Config):
        self.sessions = sessions
        self.config = config
        self.current = build_snapshot(sessions, config)
        self._task: asyncio.Task | None = None

    def _version(self) -> int:
        with self.sessions() as s:
            return current_version(s)

    def refresh(self, force: bool = False) -> bool:
        """Rebuild if the stored version moved (or ``force``); True when swapped."""
        lapsed = self.current.lapses_at is not None and time.time() >= self.current.lapses_at
        if not force and not lapsed and self._version() == self.current.version:
            return False
        self.current = build_snapshot(self.sessions, self.config)
        log.info("snapshot swapped", extra={"version": self.current.version, "hash": self.current.hash})
        return True

    async def watch(self) -> None:
        interval = self.config.server.snapshot_poll_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self.refresh)
            except Exception as e:
                log.warning("snapshot refresh failed; keeping the current one", extra={"error": str(e)})

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.watch())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

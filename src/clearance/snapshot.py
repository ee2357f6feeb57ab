"""The immutable snapshot that every request reads, and the watcher that swaps it.

A ``Snapshot`` is compiled from the store and the policy files: the key
index (hash of key -> principal), the models and their routes, and the
compiled policy.  It is identified by a content hash that goes into every
audit entry.  Requests never query the database or parse policy text: they
read ``SnapshotHolder.current``, which a background task replaces atomically
when the store's version row moves.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from clearance.config import Config, ModelSettings
from clearance.identity.tables import ApiKey, OrgGroupMember, User
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


def _principals(session: Session) -> dict[str, KeyRecord]:
    groups: dict[str, list[str]] = {}
    for m in session.scalars(select(OrgGroupMember)):
        groups.setdefault(m.org_slug, []).append(m.group_slug)
    users = {u.id: u for u in session.scalars(select(User))}
    out: dict[str, KeyRecord] = {}
    for k in session.scalars(select(ApiKey)):
        u = users.get(k.user_id)
        if u is None:
            continue
        p = Principal(key_id=k.id, user_id=u.id, org_id=u.org_slug, groups=tuple(sorted(groups.get(u.org_slug, []))),
                      nationality=u.nationality, us_person=bool(u.us_person), verified=bool(u.verified),
                      use_case=k.use_case or "")
        out[k.key_hash] = KeyRecord(p, k.expires_at, k.revoked_at is not None)
    return out


def _compile_policy(session: Session, config: Config) -> Policy:
    if not config.policy.enabled:
        return AllowAll(tuple(m.name for m in config.models))
    from clearance.policy.engine import compile_policy

    return compile_policy(session, config)


def build_snapshot(sessions: sessionmaker[Session], config: Config) -> Snapshot:
    import time

    with sessions() as session:
        version = current_version(session)
        keys = _principals(session)
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
        h.update(f"{kh}|{r.principal}|{r.expires_at}|{r.revoked}".encode())
    for m in config.models:
        h.update(m.model_dump_json().encode())
    h.update(limits.digest().encode())
    return Snapshot(version=version, hash=h.hexdigest()[:16], keys=keys, models={m.name: m for m in config.models},
                    policy=policy, limits=limits, built_at=time.time(), errors=errors)


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
        if not force and self._version() == self.current.version:
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

"""What a policy engine is compiled from, as plain values, and how to read it from the store and config.

Keeping the inputs as plain frozen records lets the engine be built from the
store (``load_world``), from a proposed change (``whatif``) or from generated
data (the benchmark) the same way.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from clearance.config import Config
from clearance.identity.tables import Org, OrgGroup, OrgGroupMember, User
from clearance.policy.cedartext import builtin_policy_text
from clearance.policy.clock import utc
from clearance.policy.tables import Approval, Directive, Grant


class PolicyCompileError(Exception):
    """The policy inputs cannot be compiled; the message says which input and why."""


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: str
    org: str
    nationality: str = ""
    us_person: bool = False
    verified: bool = False


@dataclass(frozen=True, slots=True)
class ModelRecord:
    name: str
    family: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    backends: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PolicySource:
    """A base policy file: where it came from (for messages) and its text."""

    name: str
    text: str


@dataclass(frozen=True, slots=True)
class DirectiveRecord:
    id: str
    title: str
    text: str
    effective_at: datetime
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    id: str
    org: str
    model: str
    use_case: str = ""  # e.g. "security-testing"; "" for a plain approval


@dataclass(frozen=True, slots=True)
class GrantRecord:
    id: str
    org: str
    model: str
    starts_at: datetime
    ends_at: datetime
    reason: str = ""


@dataclass(frozen=True)
class PolicyWorld:
    """Everything a ``PolicyEngine`` is compiled from."""

    orgs: dict[str, tuple[str, ...]]  # org slug -> its org groups
    groups: tuple[str, ...]
    users: tuple[UserRecord, ...]
    models: tuple[ModelRecord, ...]
    sources: tuple[PolicySource, ...]
    directives: tuple[DirectiveRecord, ...] = ()
    approvals: tuple[ApprovalRecord, ...] = ()
    grants: tuple[GrantRecord, ...] = ()
    cache_size: int = 100_000

    def with_directive(self, directive: DirectiveRecord) -> "PolicyWorld":
        """This world plus one more directive (for impact analysis)."""
        return replace(self, directives=self.directives + (directive,))


def load_sources(config: Config) -> tuple[PolicySource, ...]:
    """The shipped policies named in ``policy.builtin`` and the files in ``policy.files``."""
    out = [PolicySource(f"builtin:{name}", builtin_policy_text(name)) for name in config.policy.builtin]
    for p in config.policy.files:
        path: Path = config.resolve(p)
        try:
            out.append(PolicySource(str(path), path.read_text()))
        except OSError as e:
            raise PolicyCompileError(f"cannot read policy file {path}: {e.strerror or e}") from None
    return tuple(out)


def load_models(config: Config) -> tuple[ModelRecord, ...]:
    models = []
    for m in config.models:
        attrs = dict(m.attributes)
        if "self_hosted" not in attrs and m.backends:
            attrs["self_hosted"] = all(_self_hosted(config, b) for b in m.backends)
        models.append(ModelRecord(m.name, m.family, attrs, tuple(m.backends)))
    return tuple(models)


def _self_hosted(config: Config, backend: str) -> bool:
    try:
        return config.backend(backend).self_hosted
    except KeyError:
        return False


def _verified(u: User, now: datetime | None) -> bool:
    """Whether a user counts as verified at ``now``: ``verified`` and its ``verified_until`` not passed."""
    if not u.verified:
        return False
    return u.verified_until is None or now is None or utc(u.verified_until) > utc(now)


def load_world(session: Session, config: Config, now: datetime | None = None) -> PolicyWorld:
    """Read orgs, groups, users, directives, approvals and grants from the store, models and files from config.

    Revoked directives, approvals and grants are left out; so are directives
    and grants that ended before ``now`` (when given).  Future ones are kept:
    their windows are conditions on ``context.now`` in the compiled policy.
    """
    groups_of: dict[str, list[str]] = defaultdict(list)
    for m in session.execute(select(OrgGroupMember)).scalars():
        groups_of[m.org_slug].append(m.group_slug)
    orgs = {o.slug: tuple(sorted(groups_of.get(o.slug, ()))) for o in session.execute(select(Org)).scalars()}
    groups = tuple(sorted(set(session.execute(select(OrgGroup.slug)).scalars())
                          | {g for gs in orgs.values() for g in gs}))
    users = tuple(
        UserRecord(u.id, u.org_slug, u.nationality or "", bool(u.us_person), _verified(u, now))
        for u in session.execute(select(User).order_by(User.id)).scalars()
    )
    directives = []
    for d in session.execute(select(Directive).where(Directive.revoked_at.is_(None)).order_by(Directive.id)).scalars():
        exp = utc(d.expires_at) if d.expires_at else None
        if now is not None and exp is not None and exp <= utc(now):
            continue
        directives.append(DirectiveRecord(d.id, d.title, d.text, utc(d.effective_at), exp))
    approvals = tuple(
        ApprovalRecord(a.id, a.org_slug, a.model, a.use_case or "")
        for a in session.execute(
            select(Approval).where(Approval.status == "approved").order_by(Approval.id)
        ).scalars()
    )
    grants = []
    for g in session.execute(select(Grant).where(Grant.revoked_at.is_(None)).order_by(Grant.id)).scalars():
        if now is not None and utc(g.ends_at) <= utc(now):
            continue
        grants.append(GrantRecord(g.id, g.org_slug, g.model, utc(g.starts_at), utc(g.ends_at), g.reason))
    return PolicyWorld(
        orgs=orgs, groups=groups, users=users,
        models=load_models(config), sources=load_sources(config),
        directives=tuple(directives), approvals=approvals, grants=tuple(grants),
        cache_size=config.policy.decision_cache_size,
    )

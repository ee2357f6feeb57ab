"""Impact analysis: who would lose or gain access if a proposed directive were applied now.

Until recorded decisions can be read back from the audit log, the replay runs
over every (user, model) pair in the store at ``now`` with no guard flags and
no declared use case, which is what the gateway decides before a prompt is
screened.  For each lost pair it names the model's backend route and the
models the user could fall back to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from clearance.config import Config
from clearance.policy.cedartext import check_policy_text
from clearance.policy.clock import utcnow
from clearance.policy.engine import GUARD_CATEGORIES, PolicyContext, build_engine
from clearance.policy.world import DirectiveRecord, load_world
from clearance.types import Principal


@dataclass(frozen=True, slots=True)
class AccessChange:
    org: str
    user: str
    model: str
    change: str  # "lose" | "gain"
    reasons: tuple[str, ...]  # the deciding rules after the change
    route: tuple[str, ...]  # the model's backend chain
    fallback: tuple[str, ...] = ()  # models the user may still use that share a backend (lose only)

    def to_json(self) -> dict:
        return {"org": self.org, "user": self.user, "model": self.model, "change": self.change,
                "reasons": list(self.reasons), "route": list(self.route), "fallback": list(self.fallback)}


@dataclass
class WhatIfReport:
    now: datetime
    pairs: int
    changes: list[AccessChange] = field(default_factory=list)
    note: str = ""

    def summary(self) -> dict:
        """Counts of users losing and gaining access, per org and per model."""
        by_org: dict[str, dict[str, int]] = {}
        by_model: dict[str, dict[str, int]] = {}
        for c in self.changes:
            by_org.setdefault(c.org, {"lose": 0, "gain": 0})[c.change] += 1
            by_model.setdefault(c.model, {"lose": 0, "gain": 0})[c.change] += 1
        return {"by_org": by_org, "by_model": by_model}

    def to_json(self) -> dict:
        return {"now": self.now.isoformat(), "pairs_replayed": self.pairs, "note": self.note,
                "summary": self.summary(), "changes": [c.to_json() for c in self.changes]}


def whatif(session: Session, config: Config, text: str, now: datetime | None = None) -> WhatIfReport:
    """Replay the store against the current policy and against it plus ``text``.

    Raises ``PolicyTextError`` (with line and column) if ``text`` is not an
    acceptable directive, and ``PolicyCompileError`` if the store does not compile.
    """
    check_policy_text(text, "proposed directive")
    now = now or utcnow()
    world = load_world(session, config, now=now)
    before = build_engine(world)
    after = build_engine(world.with_directive(DirectiveRecord("proposed", "Proposed directive", text, now, None)))
    routes = {m.name: tuple(m.backends) for m in world.models}
    zero = {c: 0.0 for c in GUARD_CATEGORIES}
    ctx = PolicyContext(now=now, use_case="", guard=zero)
    report = WhatIfReport(now=now, pairs=len(world.users) * len(world.models))
    for u in world.users:
        p = Principal(key_id="", user_id=u.id, org_id=u.org)
        after_allowed = after.allowed_models(p, now)
        for m in before.models:
            was = before.decide(p, m, ctx)
            will = after.decide(p, m, ctx)
            if was.allowed == will.allowed:
                continue
            fallback: tuple[str, ...] = ()
            if not will.allowed:
                shared = [a for a in after_allowed if set(routes[a]) & set(routes[m])]
                fallback = tuple(shared or after_allowed)
            report.changes.append(AccessChange(
                org=u.org, user=u.id, model=m, change="gain" if will.allowed else "lose",
                reasons=tuple(will.reason_ids), route=routes[m], fallback=fallback,
            ))
    report.changes.sort(key=lambda c: (c.org, c.user, c.model))
    return report

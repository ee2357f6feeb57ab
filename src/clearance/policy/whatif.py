"""Impact analysis: who would lose or gain access if a proposed directive were applied now.

Two sources of requests to replay, under the current rules and under the
current rules plus the proposed text, both at ``now``:

* with ``since``, the decisions recorded in the audit log over that window
  (each caller, model and guard scores as recorded; the declared use case is
  the caller's key's, when the user has keys of one use case only);
* otherwise, or when the log holds no decision in the window, every (user,
  model) pair in the store with no guard flags and no declared use case,
  which is what the gateway decides before a prompt is screened.

Changes are reported per org, user and model, with how many recorded
requests each stands for, the model's backend route, and for a lost model the
models the user could fall back to and the backend that would serve the
first of them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from clearance.config import Config
from clearance.identity.tables import ApiKey
from clearance.policy.cedartext import check_policy_text
from clearance.policy.clock import utcnow
from clearance.guard.context import policy_scores
from clearance.policy.engine import GUARD_CATEGORIES, PolicyContext, PolicyEngine, build_engine
from clearance.policy.whatif_records import RecordedDecisions, read_recorded
from clearance.policy.world import DirectiveRecord, PolicyWorld, load_world
from clearance.types import Principal


@dataclass(frozen=True, slots=True)
class AccessChange:
    org: str
    user: str
    model: str
    change: str  # "lose" | "gain"
    reasons: tuple[str, ...]  # the deciding rules after the change
    route: tuple[str, ...]  # the model's backend chain
    fallback: tuple[str, ...] = ()  # models the user may still use, those sharing a backend first (lose only)
    fallback_backend: str = ""  # the backend that would serve the first fallback model (lose only)
    requests: int = 0  # recorded requests this change stands for (0 when replaying the store)

    def to_json(self) -> dict:
        return {"org": self.org, "user": self.user, "model": self.model, "change": self.change,
                "reasons": list(self.reasons), "route": list(self.route), "fallback": list(self.fallback),
                "fallback_backend": self.fallback_backend, "requests": self.requests}


@dataclass
class WhatIfReport:
    now: datetime
    pairs: int
    changes: list[AccessChange] = field(default_factory=list)
    note: str = ""
    source: str = "store"  # "audit": recorded decisions were replayed; "store": every (user, model) pair
    since: datetime | None = None
    requests: int = 0  # recorded requests replayed (source "audit")

    def summary(self) -> dict:
        """Per org, model and user: (user, model) pairs and recorded requests that lose and gain access."""
        def tally() -> dict[str, int]:
            return {"lose": 0, "gain": 0, "requests_lose": 0, "requests_gain": 0}

        out: dict[str, dict[str, dict[str, int]]] = {"by_org": {}, "by_model": {}, "by_user": {}}
        for c in self.changes:
            for view, key in (("by_org", c.org), ("by_model", c.model), ("by_user", f"{c.org}/{c.user}")):
                t = out[view].setdefault(key, tally())
                t[c.change] += 1
                t[f"requests_{c.change}"] += c.requests
        return out

    def to_json(self) -> dict:
        return {"now": self.now.isoformat(), "source": self.source,
                "since": self.since.isoformat() if self.since else None, "pairs_replayed": self.pairs,
                "requests_replayed": self.requests, "note": self.note, "summary": self.summary(),
                "changes": [c.to_json() for c in self.changes]}


def whatif(session: Session, config: Config, text: str, now: datetime | None = None,
           since: timedelta | None = None) -> WhatIfReport:
    """Replay recorded decisions (``since``) or the store against the current policy and it plus ``text``.

    Raises ``PolicyTextError`` (with line and column) if ``text`` is not an
    acceptable directive, and ``PolicyCompileError`` if the store does not compile.
    """
    check_policy_text(text, "proposed directive")
    now = now or utcnow()
    world = load_world(session, config, now=now)
    before = build_engine(world)
    after = build_engine(world.with_directive(DirectiveRecord("proposed", "Proposed directive", text, now, None)))
    replay = _Replay(world, config, before, after, now)
    if since is not None:
        recorded = read_recorded(session, now - since, now)
        if recorded.requests:
            report = replay.recorded(recorded, _use_cases(session))
            report.note = (f"replayed {recorded.requests} recorded decisions "
                           f"({len(recorded.counts)} distinct) logged since {report.since.isoformat()}"
                           + (f"; {recorded.skipped} entries without a caller were skipped" if recorded.skipped
                              else ""))
            return report
        report = replay.pairs()
        report.note = (f"no decisions recorded since {(now - since).isoformat()}; replayed every (user, model) "
                       "pair in the store at now, with no guard flags")
        return report
    report = replay.pairs()
    report.note = "replayed every (user, model) pair in the store at now, with no guard flags"
    return report


def _use_cases(session: Session) -> dict[str, str]:
    """Each user's declared use case, when all their live keys declare the same one."""
    seen: dict[str, set[str]] = defaultdict(set)
    for user, use_case in session.execute(select(ApiKey.user_id, ApiKey.use_case).where(ApiKey.revoked_at.is_(None))):
        seen[user].add(use_case or "")
    return {u: next(iter(cases)) for u, cases in seen.items() if len(cases) == 1}


class _Replay:
    """Decisions of one (world, before, after) at ``now``, and the fallbacks of lost models."""

    def __init__(self, world: PolicyWorld, config: Config, before: PolicyEngine, after: PolicyEngine,
                 now: datetime) -> None:
        self.world, self.before, self.after, self.now = world, before, after, now
        self.routes = {m.name: tuple(m.backends) for m in world.models}
        self.available = {b.name for b in config.backends if b.available}
        self.orgs = {u.id: u.org for u in world.users}
        self._allowed: dict[tuple[str, str, str], list[str]] = {}

    def _principal(self, user: str, org: str, use_case: str = "") -> Principal:
        return Principal(key_id="", user_id=user, org_id=self.orgs.get(user, org), use_case=use_case)

    def _fallback(self, p: Principal, model: str) -> tuple[tuple[str, ...], str]:
        key = (p.user_id, p.org_id, p.use_case)
        if key not in self._allowed:
            self._allowed[key] = self.after.allowed_models(p, self.now, p.use_case)
        allowed = [m for m in self._allowed[key] if m != model]
        shared = [m for m in allowed if set(self.routes[m]) & set(self.routes[model])]
        order = shared + [m for m in allowed if m not in shared]
        backend = ""
        for m in order:
            backend = next((b for b in self.routes[m] if b in self.available), "")
            if backend:
                break
        return tuple(order), backend

    def _change(self, p: Principal, model: str, ctx: PolicyContext, requests: int) -> AccessChange | None:
        was = self.before.decide(p, model, ctx)
        will = self.after.decide(p, model, ctx)
        if was.allowed == will.allowed:
            return None
        fallback, backend = self._fallback(p, model) if not will.allowed else ((), "")
        return AccessChange(org=p.org_id, user=p.user_id, model=model, change="gain" if will.allowed else "lose",
                            reasons=tuple(will.reason_ids), route=self.routes[model], fallback=fallback,
                            fallback_backend=backend, requests=requests)

    def pairs(self) -> WhatIfReport:
        zero = {c: 0.0 for c in GUARD_CATEGORIES}
        ctx = PolicyContext(now=self.now, use_case="", guard=zero)
        report = WhatIfReport(now=self.now, pairs=len(self.world.users) * len(self.world.models))
        for u in self.world.users:
            p = self._principal(u.id, u.org)
            for m in self.before.models:
                c = self._change(p, m, ctx, 0)
                if c is not None:
                    report.changes.append(c)
        report.changes.sort(key=lambda c: (c.org, c.user, c.model))
        return report

    def recorded(self, recorded: RecordedDecisions, use_cases: dict[str, str]) -> WhatIfReport:
        merged: dict[tuple[str, str, str, str], AccessChange] = {}
        pairs: set[tuple[str, str]] = set()
        for req, n in recorded.counts.items():
            if req.model not in self.routes:
                continue  # a model no longer configured: nothing to lose or gain
            p = self._principal(req.user, req.org, use_cases.get(req.user, ""))
            pairs.add((p.user_id, req.model))
            guard = dict(req.guard)
            # Read as the request path reads a guard's scores: entries recorded before the cyber
            # tiers hold only cyber_offense, which counts as cyber_high_risk (fail closed).
            ctx = PolicyContext(now=self.now, use_case=p.use_case, guard=policy_scores(
                {c: min(max(float(guard[c]), 0.0), 1.0) for c in GUARD_CATEGORIES if guard.get(c) is not None}))
            c = self._change(p, req.model, ctx, n)
            if c is None:
                continue
            k = (c.org, c.user, c.model, c.change)
            old = merged.get(k)
            if old is None:
                merged[k] = c
            else:
                reasons = old.reasons + tuple(r for r in c.reasons if r not in old.reasons)
                merged[k] = AccessChange(old.org, old.user, old.model, old.change, reasons, old.route, old.fallback,
                                         old.fallback_backend, old.requests + c.requests)
        report = WhatIfReport(now=self.now, pairs=len(pairs), source="audit", since=recorded.since,
                              requests=recorded.requests)
        report.changes = sorted(merged.values(), key=lambda c: (c.org, c.user, c.model, c.change))
        return report

"""Limits compiled into the snapshot, and the time windows they count in.

``LimitIndex.binding(principal, model)`` gives the limits that bind a request:
those of its key, user, org, each of its org's groups and everyone, on its
model or on every model.  The answer is memoised per (key, model) for the
snapshot's life, so a request with no limits costs one dictionary look-up.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from clearance.limits.tables import UsageLimit
from clearance.types import Principal


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    scope: str
    subject: str
    model: str
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    tokens_per_day: int | None = None
    spend_per_month_micro_usd: int | None = None
    on_store_error: str = "deny"

    def describe(self) -> str:
        who = "everyone" if self.scope == "all" else f"{self.scope} {self.subject}"
        return f"{who} on {self.model or 'every model'}"


@dataclass
class LimitIndex:
    rules: tuple[Rule, ...] = ()
    _memo: dict[tuple[str, str], tuple[Rule, ...]] = field(default_factory=dict, repr=False)

    def binding(self, principal: Principal, model: str) -> tuple[Rule, ...]:
        if not self.rules:
            return ()
        key = (principal.key_id or principal.user_id, model)
        hit = self._memo.get(key)
        if hit is None:
            hit = tuple(r for r in self.rules if r.model in ("", model) and _applies(r, principal))
            if len(self._memo) > 100_000:
                self._memo.clear()
            self._memo[key] = hit
        return hit

    def digest(self) -> str:
        return "|".join(repr(r) for r in self.rules)


def _applies(rule: Rule, p: Principal) -> bool:
    return (rule.scope == "all" or (rule.scope == "key" and rule.subject == p.key_id)
            or (rule.scope == "user" and rule.subject == p.user_id) or (rule.scope == "org" and rule.subject == p.org_id)
            or (rule.scope == "group" and rule.subject in p.groups))


def load_limits(session: Session) -> LimitIndex:
    rows = session.scalars(select(UsageLimit).order_by(UsageLimit.id))
    return LimitIndex(tuple(Rule(r.id, r.scope, r.subject, r.model, r.requests_per_minute, r.tokens_per_minute,
                                 r.tokens_per_day, r.spend_per_month_micro_usd, r.on_store_error) for r in rows))


# --- windows: (name, id of the current window, seconds until it ends) ----------

def minute(now: float) -> tuple[str, int]:
    w = int(now // 60)
    return f"m{w}", (w + 1) * 60 - int(now)


def day(now: float) -> tuple[str, int]:
    w = int(now // 86_400)
    return f"d{w}", (w + 1) * 86_400 - int(now)


def month(now: float) -> tuple[str, int]:
    t = datetime.fromtimestamp(now, timezone.utc)
    days = calendar.monthrange(t.year, t.month)[1]
    end = datetime(t.year, t.month, 1, tzinfo=timezone.utc).timestamp() + days * 86_400
    return f"M{t.year}{t.month:02d}", int(end - now) + 1

"""Compliance summary of the audit log: ``clearance audit report``.

Counts decisions per model, org, decision and deciding rule (policy or
directive id) over a time window, and for each rule the time from its first
appearance in the window to its first enforced denial.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from clearance.audit.tables import AuditEntryRow

_entries = AuditEntryRow.__table__


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def build_report(engine: Engine, since: datetime | None = None, until: datetime | None = None) -> dict[str, Any]:
    """Summarise the decision entries logged in [since, until)."""
    query = select(_entries.c.idx, _entries.c.body, _entries.c.logged_at).order_by(_entries.c.idx)
    if since is not None:
        query = query.where(_entries.c.logged_at >= since)
    if until is not None:
        query = query.where(_entries.c.logged_at < until)
    decisions: Counter[str] = Counter()
    per_model: dict[str, Counter[str]] = defaultdict(Counter)
    per_org: dict[str, Counter[str]] = defaultdict(Counter)
    rules: dict[str, dict[str, Any]] = {}
    total = 0
    with engine.connect() as conn:
        for _idx, body, logged_at in conn.execution_options(yield_per=10_000).execute(query):
            e = json.loads(body)
            if e.get("kind") != "decision":
                continue
            total += 1
            d = str(e.get("decision", ""))
            decisions[d] += 1
            per_model[str(e.get("model", ""))][d] += 1
            per_org[str(e.get("org", ""))][d] += 1
            for rid in e.get("reasons") or []:
                r = rules.setdefault(rid, {"count": 0, "denials": 0, "first_seen": logged_at, "first_denial": None})
                r["count"] += 1
                if d != "allow":
                    r["denials"] += 1
                    if r["first_denial"] is None:
                        r["first_denial"] = logged_at
    out_rules = {}
    for rid, r in sorted(rules.items()):
        fd = r["first_denial"]
        out_rules[rid] = {
            "count": r["count"],
            "denials": r["denials"],
            "first_seen": _iso(r["first_seen"]),
            "first_denial": _iso(fd),
            "seconds_to_first_denial": (fd - r["first_seen"]).total_seconds() if fd is not None else None,
        }
    return {
        "since": _iso(since),
        "until": _iso(until),
        "decisions": total,
        "by_decision": dict(sorted(decisions.items())),
        "by_model": {k: dict(sorted(v.items())) for k, v in sorted(per_model.items())},
        "by_org": {k: dict(sorted(v.items())) for k, v in sorted(per_org.items())},
        "by_rule": out_rules,
    }

"""Compliance summary of the audit log: ``clearance audit report``.

Counts decisions per model, org, decision and deciding rule (policy or
directive id) over a time window, and for each rule the time from its first
appearance in the window to its first enforced denial.  Lists the
control-plane changes of the window (who did what to which object, with the
digests of its state before and after), each with its entry index.

For each incident (``clearance incident``), its band, the time from the
assessment report to its directive and from the directive to its first
enforced denial.  For each directive in the policy tables that is in force at some point of the
window, it also gives the time from the directive's effective instant to the
first denial in the log that names it (with that entry's index, so
``clearance audit prove`` can show it is in the log), searching from the
effective instant whatever the window's start.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from clearance.audit.tables import AuditEntryRow

_entries = AuditEntryRow.__table__


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _entry_time(e: dict, logged_at: datetime) -> datetime:
    """When the entry's decision was made (its ``time``), or when it was logged if that is unreadable."""
    try:
        return _aware(datetime.fromisoformat(str(e.get("time", "")).replace("Z", "+00:00")))
    except ValueError:
        return _aware(logged_at)


def _directives(engine: Engine, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
    """Directives whose period in force overlaps [since, until), oldest first (none if the table is absent)."""
    from clearance.policy.tables import Directive

    try:
        with engine.connect() as conn:
            rows = conn.execute(select(Directive.__table__).order_by(Directive.effective_at, Directive.id)).all()
    except SQLAlchemyError:
        return []
    out = []
    for r in rows:
        eff = _aware(r.effective_at)
        end = min((_aware(t) for t in (r.expires_at, r.revoked_at) if t is not None), default=None)
        if until is not None and eff >= _aware(until):
            continue
        if since is not None and end is not None and end <= _aware(since):
            continue
        out.append({"id": r.id, "title": r.title, "authority": r.authority, "effective_at": eff,
                    "expires_at": _aware(r.expires_at) if r.expires_at else None,
                    "revoked_at": _aware(r.revoked_at) if r.revoked_at else None})
    return out


def directive_enforcement(engine: Engine, since: datetime | None = None,
                          until: datetime | None = None) -> dict[str, dict[str, Any]]:
    """Per directive in force during [since, until): its first enforced denial and the time to it.

    The log is read from the earliest effective instant (entries logged
    before it cannot be enforcement), up to ``until``.  A denial counts for a
    directive when the entry's decision is not ``allow``, its ``reasons`` name
    the directive and its time is at or after the effective instant.
    """
    directives = _directives(engine, since, until)
    if not directives:
        return {}
    first: dict[str, tuple[datetime, int, str]] = {}
    denials: Counter[str] = Counter()
    ids = {d["id"]: d["effective_at"] for d in directives}
    query = (select(_entries.c.idx, _entries.c.body, _entries.c.logged_at)
             .where(_entries.c.logged_at >= min(ids.values())).order_by(_entries.c.idx))
    if until is not None:
        query = query.where(_entries.c.logged_at < until)
    with engine.connect() as conn:
        for idx, body, logged_at in conn.execution_options(yield_per=10_000).execute(query):
            if not any(d in body for d in ids):  # cheap filter before parsing
                continue
            e = json.loads(body)
            if e.get("kind") != "decision" or e.get("decision") == "allow":
                continue
            t = _entry_time(e, logged_at)
            for rid in e.get("reasons") or []:
                eff = ids.get(rid)
                if eff is None or t < eff:
                    continue
                if since is None or _aware(logged_at) >= _aware(since):
                    denials[rid] += 1
                if rid not in first or t < first[rid][0]:
                    first[rid] = (t, idx, str(e.get("request_id", "")))
    out: dict[str, dict[str, Any]] = {}
    for d in directives:
        f = first.get(d["id"])
        out[d["id"]] = {
            "title": d["title"], "authority": d["authority"],
            "effective_at": _iso(d["effective_at"]), "expires_at": _iso(d["expires_at"]),
            "revoked_at": _iso(d["revoked_at"]),
            "denials_in_window": denials[d["id"]],
            "first_denial": _iso(f[0]) if f else None,
            "first_denial_entry": f[1] if f else None,
            "first_denial_request": f[2] if f else None,
            "seconds_to_first_denial": round((f[0] - d["effective_at"]).total_seconds(), 6) if f else None,
        }
    return out


def build_report(engine: Engine, since: datetime | None = None, until: datetime | None = None) -> dict[str, Any]:
    """Summarise the decision entries logged in [since, until) and list its control-plane changes."""
    query = select(_entries.c.idx, _entries.c.body, _entries.c.logged_at).order_by(_entries.c.idx)
    if since is not None:
        query = query.where(_entries.c.logged_at >= since)
    if until is not None:
        query = query.where(_entries.c.logged_at < until)
    decisions: Counter[str] = Counter()
    per_model: dict[str, Counter[str]] = defaultdict(Counter)
    per_org: dict[str, Counter[str]] = defaultdict(Counter)
    rules: dict[str, dict[str, Any]] = {}
    changes: list[dict[str, Any]] = []
    total = 0
    with engine.connect() as conn:
        for idx, body, logged_at in conn.execution_options(yield_per=10_000).execute(query):
            e = json.loads(body)
            if e.get("kind") == "change":
                changes.append(_change(idx, e))
                continue
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
        "directives": (enforcement := directive_enforcement(engine, since, until)),
        "incidents": _incidents(engine, enforcement),
        "changes": changes,
    }


def _change(idx: int, e: dict) -> dict[str, Any]:
    """A control-plane change entry as the report lists it (see ``audit/changes.py`` for the fields)."""
    reasons = e.get("reasons") or [""]
    return {"entry": idx, "time": e.get("time", ""), "administrator": e.get("principal", ""),
            "action": e.get("decision", ""), "object": reasons[0], "org": e.get("org", ""),
            "before_sha256": e.get("prompt_sha256", ""), "after_sha256": e.get("completion_sha256", ""),
            "request_id": e.get("request_id", "")}


def _incidents(engine: Engine, enforcement: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Incidents (``clearance incident``) with their band and lags; their directives' enforcement is read
    from the whole log when it is not in the window's."""
    from clearance.policy.incidents import incident_summary
    from clearance.policy.tables import Incident

    try:
        with engine.connect() as conn:
            rows = conn.execute(select(Incident.__table__).order_by(Incident.opened_at, Incident.id)).all()
    except SQLAlchemyError:
        return []
    incidents = []
    for r in rows:
        d = dict(r._mapping)
        for k in ("opened_at", "reported_at", "applied_at", "closed_at"):
            d[k] = _aware(d[k]) if d[k] is not None else None
        incidents.append(d)
    if any(i["directive_id"] and i["directive_id"] not in enforcement for i in incidents):
        enforcement = {**directive_enforcement(engine), **enforcement}
    return incident_summary(incidents, enforcement)

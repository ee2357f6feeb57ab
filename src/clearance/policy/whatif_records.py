"""Recorded decisions read back from the audit log, grouped for impact analysis.

``clearance directive whatif --since`` replays what callers actually asked
for.  Each decision entry of the audit log names the caller (user id and
org), the model and the guard scores; this module reads the entries logged
in a window and groups identical requests, so a replay evaluates each
distinct (user, org, model, scores) once and counts how many recorded
requests it stands for.  Completion entries of streamed answers are skipped
(their decision entry is counted), and so are entries without a caller.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from clearance.audit.tables import AuditEntryRow

_entries = AuditEntryRow.__table__


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """Identical recorded requests: who, which model, the guard scores (4 decimals, as Cedar sees them)."""

    user: str
    org: str
    model: str
    guard: tuple[tuple[str, float], ...]


@dataclass
class RecordedDecisions:
    """The recorded requests of a window, with how many times each was made and what was decided."""

    since: datetime
    until: datetime
    counts: Counter[RecordedRequest]
    recorded_allowed: Counter[RecordedRequest]
    entries: int = 0  # decision entries read
    skipped: int = 0  # decision entries without a caller or model, or that could not be read

    @property
    def requests(self) -> int:
        return sum(self.counts.values())


def _guard(raw: object) -> tuple[tuple[str, float], ...]:
    if not isinstance(raw, dict):
        return ()
    out = []
    for k, v in raw.items():
        try:
            out.append((str(k), round(float(v), 4)))
        except (TypeError, ValueError):
            continue
    return tuple(sorted(out))


def read_recorded(session: Session, since: datetime, until: datetime) -> RecordedDecisions:
    """The decision entries logged in [since, until), grouped into distinct requests."""
    query = (select(_entries.c.body).where(_entries.c.logged_at >= since).where(_entries.c.logged_at < until)
             .order_by(_entries.c.idx))
    out = RecordedDecisions(since=since, until=until, counts=Counter(), recorded_allowed=Counter())
    for (body,) in session.execute(query.execution_options(yield_per=10_000)):
        try:
            e = json.loads(body)
        except ValueError:
            out.skipped += 1
            continue
        if not isinstance(e, dict) or e.get("kind") != "decision":
            continue
        out.entries += 1
        user, model = e.get("principal"), e.get("model")
        if not user or not model or not isinstance(user, str) or not isinstance(model, str):
            out.skipped += 1
            continue
        req = RecordedRequest(user=user, org=str(e.get("org") or ""), model=model, guard=_guard(e.get("guard")))
        out.counts[req] += 1
        if e.get("decision") == "allow":
            out.recorded_allowed[req] += 1
    return out

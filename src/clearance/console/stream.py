"""The live decision stream and the overview's rates, read from the audit log in the database.

Nothing here touches the request path: the stream tails ``audit_entries`` by
index (every ``stream_poll_seconds``), so it sees the decisions of every
worker and replica that share the store.  Each decision is sent as a
server-sent event whose data is a table row rendered by the template (the
htmx SSE extension swaps it in).  Filters: org, model and outcome
(``allow``, ``deny``, ``guard_block``, ``error``, ``refused``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from clearance.audit.tables import AuditEntryRow

_entries = AuditEntryRow.__table__
OUTCOMES = ("allow", "deny", "guard_block", "error", "refused")
BACKLOG = 25  # decisions shown when the stream opens


@dataclass(frozen=True)
class Filters:
    org: str = ""
    model: str = ""
    outcome: str = ""

    @classmethod
    def of(cls, params) -> Filters:
        outcome = params.get("outcome", "")
        return cls(params.get("org", "")[:64], params.get("model", "")[:200], outcome if outcome in OUTCOMES else "")

    def match(self, e: dict) -> bool:
        if self.org and e.get("org") != self.org:
            return False
        if self.model and e.get("model") != self.model:
            return False
        return not self.outcome or outcome_of(e) == self.outcome


def outcome_of(e: dict) -> str:
    return "refused" if e.get("kind") == "refused" else str(e.get("decision", ""))


def decision_row(idx: int, e: dict) -> dict:
    """An entry as the stream and the audit page show it."""
    return {"index": idx, "time": e.get("time", ""), "request_id": e.get("request_id", ""),
            "principal": e.get("principal", ""), "org": e.get("org", ""), "model": e.get("model", ""),
            "outcome": outcome_of(e), "reasons": e.get("reasons") or [], "backend": e.get("backend", ""),
            "status": e.get("status", 0)}


def read_after(engine, after: int, filters: Filters, limit: int = 500) -> tuple[int, list[dict]]:
    """Decision and refusal entries with index > ``after`` that pass ``filters``; (last index read, rows)."""
    with engine.connect() as conn:
        rows = conn.execute(select(_entries.c.idx, _entries.c.body).where(_entries.c.idx > after)
                            .order_by(_entries.c.idx).limit(limit)).all()
    out = []
    last = after
    for idx, body in rows:
        last = int(idx)
        e = json.loads(body)
        if e.get("kind") in ("decision", "refused") and filters.match(e):
            out.append(decision_row(last, e))
    return last, out


def backlog(engine, filters: Filters, n: int = BACKLOG, scan: int = 5000) -> tuple[int, list[dict]]:
    """The newest ``n`` matching decisions among the last ``scan`` entries, oldest first; (head index, rows)."""
    with engine.connect() as conn:
        head = conn.execute(select(func.max(_entries.c.idx))).scalar()
    if head is None:
        return -1, []
    _, rows = read_after(engine, max(-1, int(head) - scan), filters, limit=scan + 1)
    return int(head), rows[-n:]


def rates(engine, window: timedelta) -> dict:
    """Decisions over the last ``window``: counts and shares of allow, deny, guard_block, error and refused."""
    since = datetime.now(timezone.utc) - window
    counts: Counter[str] = Counter()
    with engine.connect() as conn:
        q = select(_entries.c.body).where(_entries.c.logged_at >= since).order_by(_entries.c.idx)
        for (body,) in conn.execution_options(yield_per=10_000).execute(q):
            e = json.loads(body)
            if e.get("kind") == "decision":
                counts[outcome_of(e)] += 1
            elif e.get("kind") == "refused":
                counts["refused"] += max(1, int(e.get("count") or 1))
    total = sum(counts.values())
    return {"total": total, "window_minutes": int(window.total_seconds() // 60),
            "rows": [{"outcome": o, "count": counts[o], "share": (100.0 * counts[o] / total) if total else 0.0}
                     for o in OUTCOMES]}


def sse(event: str, html: str, event_id: int | None = None) -> str:
    """One server-sent event whose data is ``html`` (one ``data:`` line per line), with the entry index as its id."""
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return head + "".join(f"data: {line}\n" for line in html.splitlines() or [""]) + "\n"


async def decision_events(engine, filters: Filters, render_row, poll: float, still_signed_in,
                          disconnected, resume_after: int | None = None) -> AsyncIterator[str]:
    """The stream: the backlog, then each new matching decision; a comment every 15 s keeps it open.

    A browser that reconnects sends the last event's id (``resume_after``): the
    stream resumes after it instead of sending the backlog again.
    ``still_signed_in()`` is asked every 30 s; the stream ends with the session.
    """
    if resume_after is not None:
        head, rows = resume_after, []
    else:
        head, rows = await asyncio.to_thread(backlog, engine, filters)
    for r in rows:
        yield sse("decision", render_row(r), r["index"])
    yield ": stream open\n\n"
    last_ping = last_check = time.monotonic()
    while True:
        if await disconnected():
            return
        head, rows = await asyncio.to_thread(read_after, engine, head, filters)
        for r in rows:
            yield sse("decision", render_row(r), r["index"])
        now = time.monotonic()
        if now - last_check >= 30:
            last_check = now
            if not await asyncio.to_thread(still_signed_in):
                yield sse("ended", "<tr><td colspan=7>session ended: sign in again</td></tr>")
                return
        if now - last_ping >= 15:
            last_ping = now
            yield ": keep-alive\n\n"
        await asyncio.sleep(poll)

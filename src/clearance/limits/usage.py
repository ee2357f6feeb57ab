"""Usage by org, user, model or key over a period, read from the audit log.

The audit log is the record of every call served, with its tokens, so it is
also the record of use.  Requests are the decision entries that were allowed;
tokens are summed over every entry of the period (a served call's tokens are
on its completion entry, or on its decision entry when answers wait for the
whole record); spend is tokens times the config's price per model.
"""

from __future__ import annotations

from datetime import datetime

import orjson
from sqlalchemy import select
from sqlalchemy.engine import Engine

from clearance.audit.tables import AuditEntryRow
from clearance.limits.settings import Price

BY = {"org": "org", "user": "principal", "model": "model", "key": "key"}


def usage_report(engine: Engine, by: str, since: datetime | None, until: datetime | None,
                 prices: dict[str, Price]) -> list[dict]:
    if by not in BY:
        raise ValueError(f"--by must be one of {', '.join(BY)}")
    field = BY[by]
    q = select(AuditEntryRow.body)
    if since is not None:
        q = q.where(AuditEntryRow.logged_at >= since)
    if until is not None:
        q = q.where(AuditEntryRow.logged_at < until)
    rows: dict[str, dict] = {}
    with engine.connect() as conn:
        for (body,) in conn.execute(q.execution_options(yield_per=5000)):
            e = orjson.loads(body)
            if e.get("kind") not in ("decision", "completion"):
                continue
            name = e.get(field) or "-"
            row = rows.setdefault(name, {by: name, "requests": 0, "refused": 0, "prompt_tokens": 0,
                                         "completion_tokens": 0, "spend_usd": 0.0})
            if e["kind"] == "decision":
                row["requests" if e.get("decision") == "allow" else "refused"] += 1
            p, c = int(e.get("prompt_tokens") or 0), int(e.get("completion_tokens") or 0)
            row["prompt_tokens"] += p
            row["completion_tokens"] += c
            price = prices.get(e.get("model", ""))
            if price is not None:
                row["spend_usd"] += (p * price.input_per_mtok + c * price.output_per_mtok) / 1e6
    out = sorted(rows.values(), key=lambda r: (-(r["prompt_tokens"] + r["completion_tokens"]), r[by]))
    for r in out:
        r["total_tokens"] = r["prompt_tokens"] + r["completion_tokens"]
        r["spend_usd"] = round(r["spend_usd"], 6)
    return out

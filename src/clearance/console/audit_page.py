"""The audit page: signed checkpoints and cosignatures, request-id search with inclusion proofs, verify, export.

Search finds the entries of a request id and proves each against the newest
checkpoint (``audit/export.prove``: leaf hash, the proof's hashes, the root,
checked before it is shown).  Verify runs the same verifier as ``clearance
audit verify`` (``audit/verify.verify_log``) in a thread; its progress and
result come back on one server-sent event stream.  Export downloads the bundle ``clearance audit export`` writes.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import datetime, timezone

from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from clearance.audit.checkpoint import parse_checkpoint, split_note
from clearance.audit.tables import AuditCheckpointRow, AuditEntryRow
from clearance.console.stream import decision_row, sse
from clearance.console.web import PREFIX, SECURITY_HEADERS, Ctx, _env, error_page, page, render

_entries = AuditEntryRow.__table__
_checkpoints = AuditCheckpointRow.__table__


def _verifier(c: Ctx):
    from clearance.audit.setup import verifier_from_config

    try:
        return verifier_from_config(c.console.config)
    except Exception:  # noqa: BLE001 - shown as "signatures not checked"
        return None


def _checkpoints_view(engine, n: int = 5) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(_checkpoints.c.size, _checkpoints.c.note, _checkpoints.c.created_at)
                            .order_by(_checkpoints.c.size.desc()).limit(n)).all()
    out = []
    for size, note, created in rows:
        try:
            text, sigs = split_note(note) if "\n\n" in note else (note, [])
            cp = parse_checkpoint(text)
            signers = [sig.name for sig in sigs]
            root = cp.root.hex()
        except Exception:  # noqa: BLE001 - a malformed note is shown raw
            signers, root = [], ""
        out.append({"size": size, "created_at": created, "note": note, "root": root,
                    "log_signer": signers[0] if signers else "", "cosigners": signers[1:]})
    return out


def _recent_changes(engine, n: int = 40) -> list[dict]:
    with engine.connect() as conn:
        head = conn.execute(select(func.max(_entries.c.idx))).scalar()
        if head is None:
            return []
        rows = conn.execute(select(_entries.c.idx, _entries.c.body).where(_entries.c.idx > head - 20_000)
                            .where(_entries.c.body.contains('"kind":"change"')).order_by(_entries.c.idx.desc())
                            .limit(n)).all()
    out = []
    for idx, body in rows:
        e = json.loads(body)
        out.append({"index": idx, "time": e.get("time"), "action": e.get("decision"), "by": e.get("principal"),
                    "object": ", ".join(e.get("reasons") or []), "org": e.get("org"),
                    "request_id": e.get("request_id")})
    return out


def _search(c: Ctx, rid: str) -> tuple[list[dict], str]:
    from clearance.audit.export import ExportError, prove

    engine = c.console.engine
    with engine.connect() as conn:
        rows = conn.execute(select(_entries.c.idx, _entries.c.body)
                            .where(_entries.c.body.contains(json.dumps(rid)))
                            .order_by(_entries.c.idx).limit(20)).all()
    found = []
    verifier = _verifier(c)
    for idx, body in rows:
        e = json.loads(body)
        if rid not in (e.get("request_id"), e.get("client_request_id")):
            continue
        item = {"index": idx, "entry": json.dumps(e, indent=2, sort_keys=True), "kind": e.get("kind"),
                "row": decision_row(idx, e), "proof": None, "proof_error": ""}
        try:
            p = prove(engine, idx, verifier)
            item["proof"] = {"tree_size": p["tree_size"], "root": p["root"], "leaf_hash": p["leaf_hash"],
                             "hashes": p["proof"], "checkpoint": p["checkpoint"]}
        except ExportError as err:
            item["proof_error"] = str(err)
        except Exception as err:  # noqa: BLE001 - a proof that fails is the finding, shown
            item["proof_error"] = f"the proof does not verify: {err}"
        found.append(item)
    return found, ("" if found else f"no entry with request id {rid!r}")


async def audit_page(request: Request, c: Ctx) -> Response:
    if not c.can("policy.read"):
        return error_page(request, 403, f"administrator {c.actor.name!r} ({c.actor.role}) may not read the audit log",
                          c)
    engine = c.console.engine
    rid = request.query_params.get("request_id", "").strip()[:200]
    found, missing = await asyncio.to_thread(_search, c, rid) if rid else ([], "")
    checkpoints = await asyncio.to_thread(_checkpoints_view, engine)
    changes = await asyncio.to_thread(_recent_changes, engine)
    return render(request, "audit.html", c=c, page="audit", checkpoints=checkpoints, changes=changes, rid=rid,
                  found=found, missing=missing, audit_on=c.console.audit is not None,
                  signed=_verifier(c) is not None)


class VerifyJob:
    """One run of the verifier in a thread, with coarse progress."""

    def __init__(self, c: Ctx) -> None:
        self.by = c.actor.name
        self.started = datetime.now(timezone.utc)
        self.state = "running"
        self.result: dict | None = None
        self.size = 0
        self._c = c
        self._t0 = time.monotonic()
        self.seconds = 0.0

    def run(self) -> None:
        from clearance.audit.verify import verify_log

        c = self._c
        try:
            with c.console.engine.connect() as conn:
                from clearance.audit.tables import AuditHead

                self.size = int(conn.execute(select(AuditHead.__table__.c.size)).scalar() or 0)
            r = verify_log(c.console.engine, _verifier(c), c.console.config.audit.origin)
            self.result = {"ok": r.ok, "size": r.size, "entries_checked": r.entries_checked,
                           "checkpoints_checked": r.checkpoints_checked, "signatures_checked": r.signatures_checked,
                           "pruned_size": r.pruned_size, "first_bad_entry": r.first_bad_entry,
                           "problems": [p.message for p in r.problems], "signed": _verifier(c) is not None}
        except Exception as e:  # noqa: BLE001
            self.result = {"ok": False, "problems": [f"the verifier could not run: {type(e).__name__}"]}
        self.seconds = time.monotonic() - self._t0
        self.state = "done"


async def verify(request: Request, c: Ctx) -> Response:
    """The verification panel: it opens the event stream that runs the verifier."""
    if not c.can("policy.read"):
        return error_page(request, 403, f"administrator {c.actor.name!r} ({c.actor.role}) may not verify the log", c)
    return render(request, "_verify.html", c=c)


async def verify_events(request: Request, c: Ctx) -> Response:
    """Run the verifier in a thread of this worker and stream its progress, then its result ("done").

    One connection carries the whole run, so it works whichever worker serves it;
    the page closes the stream on "done" (it is never reconnected into a second run).
    """
    if not c.can("policy.read"):
        return error_page(request, 403, f"administrator {c.actor.name!r} ({c.actor.role}) may not verify the log", c)
    job = VerifyJob(c)
    progress = _env.get_template("_verify_progress.html")
    result = _env.get_template("_verify_result.html")

    async def events():
        thread = threading.Thread(target=job.run, name="console-verify", daemon=True)
        thread.start()
        while job.state == "running":
            yield sse("progress", progress.render(job=job, elapsed=time.monotonic() - job._t0))
            for _ in range(5):
                if job.state != "running":
                    break
                await asyncio.sleep(0.1)
        yield sse("done", result.render(job=job, prefix=PREFIX))

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={**SECURITY_HEADERS, "x-accel-buffering": "no"})


async def export(request: Request, c: Ctx) -> Response:
    from clearance.audit.export import ExportError, export_bundle

    if not c.can("policy.read"):
        return error_page(request, 403, f"administrator {c.actor.name!r} ({c.actor.role}) may not export the log", c)
    since_raw = request.query_params.get("since", "").strip()
    try:
        since = datetime.fromisoformat(since_raw.replace("Z", "+00:00")) if since_raw else None
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=timezone.utc)
    except ValueError:
        return error_page(request, 400, f"'since' must be an ISO 8601 time, not {since_raw!r}", c)
    verifier = _verifier(c)
    try:
        bundle = await asyncio.to_thread(export_bundle, c.console.engine, since, verifier,
                                         verifier.vkey() if verifier else None)
    except ExportError as e:
        return error_page(request, 409, str(e), c)
    name = f"clearance-audit-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}.json"
    headers = {**SECURITY_HEADERS, "content-disposition": f'attachment; filename="{name}"'}
    return Response(json.dumps(bundle, indent=1) + "\n", media_type="application/json", headers=headers)


def routes() -> list[Route]:
    return [Route("/audit", page(audit_page), methods=["GET"]),
            Route("/audit/verify", page(verify), methods=["GET"]),
            Route("/audit/verify/events", page(verify_events), methods=["GET"]),
            Route("/audit/export", page(export), methods=["GET"])]

"""The directives page: list and history, write or upload Cedar, validate, preview, apply and revoke.

Validation is the admin API's (``cedartext.check_policy_text``: schema, line
and column).  The preview replays recorded traffic with ``policy.whatif``
(who loses or gains access) and dry-runs the change under the invariant
guard (``policy.enforce``), rolled back.  Apply is offered only from a
preview of the exact text (its digest travels with the form) and runs the
same service function, permission check and invariant guard as
``POST /admin/directives``; a broken invariant refuses it with the
counterexample unless overridden with a reason (recorded).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from clearance.api.admin_auth import require
from clearance.audit import changes
from clearance.audit.tables import AuditEntryRow
from clearance.console.web import (PREFIX, ActionError, Ctx, action, error_page, form, page, refused, render,
                                   run_action)
from clearance.policy import directives
from clearance.policy.cedartext import PolicyTextError, check_policy_text
from clearance.policy.enforce import InvariantViolation, invariant_guard
from clearance.policy.errors import PolicyAdminError

# Starting points for the demo's timeline (and for real ones): the text is edited before it is applied.
TEMPLATES = {
    "suspend-non-us": ("Frontier models suspended for non-US persons", """\
@id("suspend-frontier-non-us")
@title("Frontier models suspended for non-US persons")
forbid (principal, action == Clearance::Action::"invoke", resource in Clearance::ModelFamily::"frontier")
unless { principal.us_person };
"""),
    "redeploy-critical": ("frontier-cyber redeployed to critical infrastructure", """\
@id("frontier-general-us-only")
@title("frontier-general for US persons only")
forbid (principal, action == Clearance::Action::"invoke", resource == Clearance::Model::"frontier-general")
unless { principal.us_person };
@id("frontier-cyber-critical-infrastructure")
@title("frontier-cyber for critical-infrastructure orgs (and evaluators) only")
forbid (principal, action == Clearance::Action::"invoke", resource == Clearance::Model::"frontier-cyber")
unless { principal in Clearance::OrgGroup::"critical-infrastructure" || principal in Clearance::OrgGroup::"evaluators" };
"""),
    "suspend-org": ("Frontier models suspended for one org", """\
@id("suspend-org-frontier")
@title("Frontier models suspended for eu-lab")
forbid (principal, action == Clearance::Action::"invoke", resource in Clearance::ModelFamily::"frontier")
when { principal in Clearance::Org::"eu-lab" };
"""),
}
SINCE = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7), "store": None}
_entries = AuditEntryRow.__table__


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def parse_time(value: str, name: str) -> datetime | None:
    """A form's date-time (``datetime-local`` is read as UTC); None when empty."""
    if not value:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ActionError(400, f"{name}: {value!r} is not a date and time") from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


async def _text(request: Request) -> str:
    """The Cedar text: an uploaded file when one was sent, else the text box."""
    upload = request.state.form.get("file")
    if upload is not None and not isinstance(upload, str) and getattr(upload, "filename", ""):
        raw = await upload.read(262_145)
        if len(raw) > 262_144:
            raise ActionError(400, "the uploaded policy file is larger than 256 KiB")
        try:
            return raw.decode("utf-8").replace("\r\n", "\n")
        except UnicodeDecodeError:
            raise ActionError(400, "the uploaded policy file is not UTF-8 text") from None
    text = request.state.form.get("text") or ""
    return text.replace("\r\n", "\n") if isinstance(text, str) else ""


def _fields(request: Request) -> dict:
    return {k: form(request, k) for k in ("id", "title", "authority", "reference", "effective_at", "expires_at",
                                          "since", "override_invariants", "reason")}


async def list_page(request: Request, c: Ctx, status: int = 200, flash=None, draft=None) -> Response:
    if not c.can("policy.read"):
        return error_page(request, 403, f"administrator {c.actor.name!r} ({c.actor.role}) may not policy.read", c)
    with c.console.sessions() as s:
        views = directives.list_directives(s)
    template = request.query_params.get("template", "")
    if draft is None:
        draft = {"text": TEMPLATES[template][1] if template in TEMPLATES else "",
                 "title": TEMPLATES[template][0] if template in TEMPLATES else ""}
    return render(request, "directives.html", status, c=c, page="directives", directives=list(reversed(views)),
                  templates=TEMPLATES, draft=draft, flash=flash or [], since_options=list(SINCE))


def _problems(text: str) -> list[dict]:
    try:
        check_policy_text(text, "directive")
    except PolicyTextError as e:
        return [{"line": p.line, "column": p.column, "message": p.message} for p in e.problems]
    return []


async def validate(request: Request, c: Ctx) -> Response:
    text = await _text(request)
    return render(request, "_validation.html", c=c, problems=_problems(text), checked=bool(text.strip()))


def _dry_run(c: Ctx, text: str, f: dict) -> dict:
    """Apply in a transaction that is rolled back, under the invariant guard: what the check would say."""
    config = c.console.config
    with c.console.sessions() as s:
        try:
            with invariant_guard(s, config, "console directive preview", [], "", c.actor.name) as outcome:
                directives.apply_directive(s, text, id=f["id"] or "PREVIEW", title=f["title"] or "preview",
                                           effective_at=parse_time(f["effective_at"], "effective at"),
                                           expires_at=parse_time(f["expires_at"], "expires at"))
            return {"ok": True, "checked": outcome.checked}
        except InvariantViolation as e:
            return {"ok": False, "violations": [_violation(r) for r in e.results]}
        except PolicyAdminError as e:
            return {"ok": False, "error": str(e)}
        finally:
            s.rollback()
            changes.discard(s)


def _violation(r) -> dict:
    return {"id": r.id, "title": r.title, "status": r.status,
            "counterexample": r.counterexample.describe() if r.counterexample else r.reason}


def _whatif(c: Ctx, text: str, since: timedelta | None) -> dict:
    from clearance.policy.whatif import whatif

    with c.console.sessions() as s:
        return whatif(s, c.console.config, text, since=since).to_json()


async def preview(request: Request, c: Ctx) -> Response:
    if not c.can("policy.read"):
        return error_page(request, 403, f"administrator {c.actor.name!r} ({c.actor.role}) may not policy.read", c)
    text = await _text(request)
    f = _fields(request)
    problems = _problems(text)
    if problems or not text.strip():
        return render(request, "_validation.html", c=c, problems=problems, checked=bool(text.strip()))
    since = SINCE.get(f["since"] or "24h", SINCE["24h"])
    try:
        report = await asyncio.to_thread(_whatif, c, text, since)
        invariants = await asyncio.to_thread(_dry_run, c, text, f)
    except ActionError as e:
        return render(request, "_flash.html", e.status, flash=[("error", str(e))])
    return render(request, "_preview.html", c=c, report=report, invariants=invariants, text=text, f=f,
                  digest=digest(text))


async def apply(request: Request, c: Ctx) -> Response:
    text = await _text(request)
    f = _fields(request)
    if not c.can("policy.write"):
        return error_page(request, 403, f"administrator {c.actor.name!r} ({c.actor.role}) may not policy.write", c)
    if form(request, "previewed") != digest(text):
        return await list_page(request, c, 400, [("error", "Preview this exact text before applying it: the text "
                                                          "changed since its preview, or it was never previewed.")],
                               {**f, "text": text})
    overrides = [o.strip() for o in f["override_invariants"].split(",") if o.strip()]

    def run(s):
        require(c.actor, "policy.write")
        with invariant_guard(s, c.console.config, "POST /console/directives/apply", overrides, f["reason"],
                             c.actor.name):
            return directives.apply_directive(
                s, text, id=f["id"], title=f["title"], authority=f["authority"], reference=f["reference"],
                effective_at=parse_time(f["effective_at"], "effective at"),
                expires_at=parse_time(f["expires_at"], "expires at"))

    try:
        v = await run_action(request, c, run)
    except ActionError as e:
        violation = getattr(e, "violation", None)
        flash = [("error", f"Not applied: {e}")]
        if isinstance(violation, InvariantViolation):
            flash += [("error", f"invariant {r['id']} ({r['title']}): {r['counterexample']}")
                      for r in map(_violation, violation.results)]
        return await refused(request, c, e, lambda status, fl: list_page(request, c, status, fl, {**f, "text": text}),
                             flash)
    return RedirectResponse(f"{PREFIX}/directives/{v.id}?done=applied", 303)


async def revoke(request: Request, c: Ctx) -> Response:
    did = request.path_params["directive_id"]
    reason = form(request, "reason")

    def run(s):
        require(c.actor, "policy.write")
        with invariant_guard(s, c.console.config, f"POST /console/directives/{did}/revoke", [], "", c.actor.name):
            return directives.revoke_directive(s, did, reason)

    try:
        await run_action(request, c, run)
    except ActionError as e:
        return await refused(request, c, e, lambda status, flash: list_page(request, c, status, flash),
                             [("error", f"Not revoked: {e}")])
    return RedirectResponse(f"{PREFIX}/directives/{did}?done=revoked", 303)


def _history(engine, did: str) -> list[dict]:
    """The change entries naming this directive, oldest first."""
    needle = f'"directive:{did}"'
    with engine.connect() as conn:
        rows = conn.execute(select(_entries.c.idx, _entries.c.body).where(_entries.c.body.contains(needle))
                            .order_by(_entries.c.idx)).all()
    out = []
    for idx, body in rows:
        e = json.loads(body)
        if e.get("kind") == "change":
            out.append({"index": idx, "time": e.get("time"), "action": e.get("decision"), "by": e.get("principal"),
                        "request_id": e.get("request_id")})
    return out


async def detail(request: Request, c: Ctx) -> Response:
    from clearance.audit.report import directive_enforcement

    if not c.can("policy.read"):
        return error_page(request, 403, f"administrator {c.actor.name!r} ({c.actor.role}) may not policy.read", c)
    did = request.path_params["directive_id"]
    with c.console.sessions() as s:
        try:
            v = directives.get_directive(s, did)
        except PolicyAdminError as e:
            return error_page(request, 404, str(e), c)
    history = await asyncio.to_thread(_history, c.console.engine, did)
    lag = (await asyncio.to_thread(directive_enforcement, c.console.engine, v.effective_at)).get(did, {})
    done = request.query_params.get("done", "")
    flash = [("ok", f"Directive {did} {done}.")] if done in ("applied", "revoked") else []
    return render(request, "directive.html", c=c, page="directives", d=v, history=history, lag=lag, flash=flash)


def routes() -> list[Route]:
    return [Route("/directives", page(list_page), methods=["GET"]),
            Route("/directives/validate", action(validate), methods=["POST"]),
            Route("/directives/preview", action(preview), methods=["POST"]),
            Route("/directives/apply", action(apply), methods=["POST"]),
            Route("/directives/{directive_id}", page(detail), methods=["GET"]),
            Route("/directives/{directive_id}/revoke", action(revoke), methods=["POST"])]

"""The overview page: the live decision stream, decision rates, directives in force and backend health."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from clearance.console import sessions as console_sessions
from clearance.console import stream
from clearance.console.web import SECURITY_HEADERS, Ctx, _env, page, render


def _filters(request: Request, c: Ctx) -> stream.Filters:
    f = stream.Filters.of(request.query_params)
    if c.actor.role == "org-admin":  # an org-admin sees its own org's decisions only
        f = stream.Filters(c.actor.org or "", f.model, f.outcome)
    return f


def _orgs(c: Ctx) -> list[str]:
    from clearance.identity import service

    if c.actor.role == "org-admin":
        return [c.actor.org or ""]
    with c.console.sessions() as s:
        return [o.slug for o, _g in service.list_orgs(s)]


def _in_force(c: Ctx) -> list[dict]:
    from clearance.audit.report import directive_enforcement
    from clearance.policy import directives

    with c.console.sessions() as s:
        live = directives.list_directives(s, include_inactive=False)
    if not live:
        return []
    lags = directive_enforcement(c.console.engine, since=min(d.effective_at for d in live))
    return [{"id": d.id, "title": d.title, "authority": d.authority, "status": d.status,
             "effective_at": d.effective_at, "expires_at": d.expires_at, **{k: v for k, v in lags.get(d.id, {}).items()
                                                                           if k.startswith(("first_", "seconds_", "denials"))}}
            for d in live]


def _backends(c: Ctx) -> list[dict]:
    router = c.console.gw.router
    out = []
    for b in c.console.config.backends:
        breaker = router.breakers.get(b.name)
        state = breaker.state if breaker else "unknown"
        health = "disabled" if not b.available else ("healthy" if state == "closed" else
                                                       "failing" if state == "open" else "trial")
        out.append({"name": b.name, "kind": b.kind, "model": b.model or "", "self_hosted": b.self_hosted,
                    "available": b.available, "breaker": state, "health": health,
                    "failures": breaker.consecutive if breaker else 0,
                    "models": [m.name for m in c.console.config.models if b.name in m.backends]})
    return out


async def overview(request: Request, c: Ctx) -> Response:
    f = _filters(request, c)
    in_force = await asyncio.to_thread(_in_force, c) if c.can("policy.read") else None
    return render(request, "overview.html", c=c, page="overview", filters=f, orgs=_orgs(c),
                  models=[m.name for m in c.console.config.models], outcomes=stream.OUTCOMES,
                  in_force=in_force, backends=_backends(c), query=request.url.query)


async def rates(request: Request, c: Ctx) -> Response:
    window = timedelta(minutes=c.console.settings.rates_window_minutes)
    r = await asyncio.to_thread(stream.rates, c.console.engine, window) if c.actor.role != "org-admin" else None
    return render(request, "_rates.html", c=c, rates=r)


async def decisions(request: Request, c: Ctx) -> Response:
    f = _filters(request, c)
    row_template = _env.get_template("_decision_row.html")
    console = c.console
    sid = request.cookies.get(console_sessions.COOKIE, "")

    def still_signed_in() -> bool:
        with console.sessions() as s:
            return console_sessions.lookup(s, sid, console.settings.idle_minutes) is not None

    last = request.headers.get("last-event-id", "")
    events = stream.decision_events(console.engine, f, lambda r: row_template.render(r=r),
                                    console.settings.stream_poll_seconds, still_signed_in, request.is_disconnected,
                                    int(last) if last.isdigit() else None)
    headers = {**SECURITY_HEADERS, "x-accel-buffering": "no"}
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)


def routes() -> list[Route]:
    return [Route("/overview", page(overview), methods=["GET"]),
            Route("/overview/rates", page(rates), methods=["GET"]),
            Route("/stream", page(decisions), methods=["GET"])]

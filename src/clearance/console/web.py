"""The console's page plumbing: templates, security headers, sign-in checks, CSRF, role checks, actions.

``page(handler)`` wraps a GET handler: a live session is required (else a
redirect to the sign-in page).  ``action(handler)`` wraps a POST handler: a
live session and the session's CSRF token are required (else 403), and the
handler runs as an action: one store session and transaction, the permission
checks of the admin API (``admin_auth.require``), and the control-plane
changes it noted written to the audit log under the administrator's name once
committed, exactly as the admin API does.  Errors become an HTML page (or an
htmx fragment) with a status, never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from clearance.api.errors import ApiError
from clearance.api.http import request_id
from clearance.audit import changes
from clearance.console import sessions as console_sessions
from clearance.identity.roles import Actor, allowed
from clearance.identity.service import IdentityError
from clearance.policy.errors import PolicyAdminError

log = logging.getLogger("clearance.console")

PREFIX = "/console"

# No inline script or style anywhere: every script and stylesheet is a file under /console/static.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "cross-origin-opener-policy": "same-origin",
}

_env = Environment(loader=PackageLoader("clearance.console", "templates"),
                   autoescape=select_autoescape(("html", "j2")), trim_blocks=True, lstrip_blocks=True)


def _fmt_time(value: Any) -> str:
    if not value:
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _remaining(value: Any) -> str:
    """How long until ``value`` (e.g. '2 h 05 min'), or 'ended'."""
    if not value:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    s = int((value - datetime.now(timezone.utc)).total_seconds())
    if s <= 0:
        return "ended"
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m = rem // 60
    return (f"{d} d " if d else "") + (f"{h} h " if h or d else "") + f"{m:02d} min"


_env.filters["time"] = _fmt_time
_env.filters["remaining"] = _remaining


@dataclass
class Ctx:
    """What a handler works with: the signed-in administrator, their CSRF token, and the gateway's parts."""

    actor: Actor
    csrf: str
    expires_at: datetime
    console: Any  # routes.Console
    flash: list[tuple[str, str]] = field(default_factory=list)  # (level, message)

    def can(self, permission: str, org: str | None = None) -> bool:
        return allowed(self.actor, permission, org)


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _env.get_template(name).render(prefix=PREFIX, request=request, **context)
    return HTMLResponse(html, status, headers=dict(SECURITY_HEADERS))


def error_page(request: Request, status: int, message: str, ctx: Ctx | None = None) -> HTMLResponse:
    titles = {400: "Not accepted", 401: "Sign-in needed", 403: "Not allowed", 404: "Not found",
              409: "Conflict", 500: "Console error", 503: "Unavailable"}
    if request.headers.get("hx-request"):
        return render(request, "_flash.html", status, flash=[("error", message)])
    return render(request, "error.html", status, c=ctx, title=titles.get(status, "Error"), message=message,
                  code=status, rid=request_id(request))


def with_headers(response: Response) -> Response:
    for k, v in SECURITY_HEADERS.items():
        response.headers.setdefault(k, v)
    return response


def _signed_in(request: Request) -> console_sessions.SignedIn | None:
    console = request.app.state.console
    sid = request.cookies.get(console_sessions.COOKIE, "")
    if not sid:
        return None
    with console.sessions() as s:
        return console_sessions.lookup(s, sid, console.settings.idle_minutes)


Handler = Callable[[Request, Ctx], Awaitable[Response]]


def _guarded(handler: Handler, post: bool):
    async def run(request: Request) -> Response:
        try:
            signed = _signed_in(request)
            if signed is None:
                if request.headers.get("hx-request") or post or request.headers.get("accept") == "text/event-stream":
                    return error_page(request, 401, "Your console session has ended: sign in again.")
                return with_headers(RedirectResponse(f"{PREFIX}/login", 303))
            ctx = Ctx(signed.actor, signed.csrf, signed.expires_at, request.app.state.console)
            if post:
                form = await request.form(max_files=1, max_fields=64, max_part_size=1_048_576)
                request.state.form = form
                given = request.headers.get("x-csrf-token") or form.get("csrf_token")
                if not console_sessions.csrf_ok(signed.csrf, given if isinstance(given, str) else None):
                    return error_page(request, 403, "The form's CSRF token is missing or wrong: reload the page "
                                                    "and try again.", ctx)
            return with_headers(await handler(request, ctx))
        except ApiError as e:
            return error_page(request, e.status, e.message if hasattr(e, "message") else str(e))
        except Exception as e:  # noqa: BLE001 - a page never shows a traceback
            log.error("console error", exc_info=e, extra={"request_id": request_id(request)})
            return error_page(request, 500, "The console could not complete this request; the error is in the "
                                            "gateway's log under this request id.")
    return run


def page(handler: Handler):
    """A GET page for signed-in administrators."""
    return _guarded(handler, post=False)


def action(handler: Handler):
    """A POST action for signed-in administrators with the session's CSRF token."""
    return _guarded(handler, post=True)


def form(request: Request, name: str, default: str = "") -> str:
    v = request.state.form.get(name)
    return v.strip() if isinstance(v, str) else default


async def refused(request: Request, ctx: Ctx, e: "ActionError",
                  page: Callable[[int, list], Awaitable[Response]], flash: list) -> Response:
    """A refused action's answer: the 403 page for a missing permission, otherwise ``page(status, flash)``."""
    if e.status == 403:
        return error_page(request, 403, str(e), ctx)
    return await page(e.status, flash)


class ActionError(Exception):
    """An action refused with a status and a message for the administrator."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _message(e: Exception) -> str:
    if isinstance(e, ApiError):
        return getattr(e, "message", None) or str(e)
    return str(e)


async def run_action(request: Request, ctx: Ctx, fn: Callable[[Any], Any]) -> Any:
    """Run ``fn(session)`` in one transaction, then log its changes under the administrator's name.

    Raises ``ActionError`` with the status the admin API would answer (403 for
    a missing permission, 400/404/409 for the service's refusals, 503 when the
    change was made but could not be recorded).
    """
    console = ctx.console
    rid = request_id(request)
    with console.sessions() as session:
        try:
            result = fn(session)
            session.commit()
        except ApiError as e:
            session.rollback()
            changes.discard(session)
            raise ActionError(e.status, _message(e)) from None
        except IdentityError as e:
            session.rollback()
            changes.discard(session)
            raise ActionError(e.status, str(e)) from None
        except PolicyAdminError as e:
            session.rollback()
            changes.discard(session)
            err = ActionError(e.status, str(e))
            err.violation = e  # type: ignore[attr-defined]
            raise err from None
        noted = changes.take(session)
    try:
        await changes.write(console.audit, noted, ctx.actor.label, rid)
    except Exception as e:  # noqa: BLE001
        log.error("control-plane change committed but not recorded", extra={"request_id": rid, "error": str(e)})
        raise ActionError(503, "The change was made but could not be recorded in the audit log; check the audit "
                               "log's health.") from None
    return result

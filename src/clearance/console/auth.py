"""Sign-in and sign-out pages: an administrator token in, a session cookie out.

The sign-in form is protected by a double-submit token (a short-lived
SameSite=Strict cookie matched by a hidden field), since there is no session
yet.  Signing in and out are recorded in the audit log as change entries
(``console.signin``, ``console.signout``) under the administrator's name.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timezone

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from clearance.api.http import request_id
from clearance.audit import changes
from clearance.console import sessions as console_sessions
from clearance.console.web import PREFIX, Ctx, action, log, render, with_headers
from clearance.identity import admins

LOGIN_COOKIE = "clearance_console_login"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


def _login_form(request: Request, error: str = "", status: int = 200) -> Response:
    nonce = secrets.token_urlsafe(24)
    response = render(request, "login.html", status, nonce=nonce, error=error)
    response.set_cookie(LOGIN_COOKIE, nonce, max_age=1800, path=PREFIX, httponly=True, samesite="strict",
                        secure=_secure(request))
    return response


async def login_page(request: Request) -> Response:
    return _login_form(request)


async def login(request: Request) -> Response:
    console = request.app.state.console
    form = await request.form(max_files=0, max_fields=8)
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not console_sessions.csrf_ok(nonce, form.get("login_nonce") if isinstance(form.get("login_nonce"), str)
                                    else None):
        return _login_form(request, "The sign-in form expired or did not come from this console: try again.", 403)
    token = form.get("token")
    token = token.strip() if isinstance(token, str) else ""
    with console.sessions() as s:
        try:
            sid, actor = console_sessions.sign_in(s, token, console.settings.session_hours)
        except admins.AdminAuthError as e:
            return _login_form(request, f"Not signed in: {e}.", 401)
        changes.note(s, "console.signin", f"admin:{actor.name}", actor.org or "", None,
                     {"admin": actor.name, "role": actor.role, "at": datetime.now(timezone.utc).isoformat()})
        s.commit()
        noted = changes.take(s)
    try:
        await changes.write(console.audit, noted, actor.label, request_id(request))
    except Exception as e:  # noqa: BLE001 - the session stays valid; the log's health is shown elsewhere
        log.error("console sign-in not recorded", extra={"error": str(e)})
    response = with_headers(RedirectResponse(f"{PREFIX}/overview", 303))
    response.set_cookie(console_sessions.COOKIE, sid, max_age=int(console.settings.session_hours * 3600),
                        path=PREFIX, httponly=True, samesite="strict", secure=_secure(request))
    response.delete_cookie(LOGIN_COOKIE, path=PREFIX)
    return response


async def logout(request: Request, c: Ctx) -> Response:
    console = c.console
    with console.sessions() as s:
        name = console_sessions.sign_out(s, request.cookies.get(console_sessions.COOKIE, ""))
        if name:
            changes.note(s, "console.signout", f"admin:{name}", c.actor.org or "", None, {"admin": name})
        s.commit()
        noted = changes.take(s)
    try:
        await changes.write(console.audit, noted, c.actor.label, request_id(request))
    except Exception as e:  # noqa: BLE001
        log.error("console sign-out not recorded", extra={"error": str(e)})
    response = RedirectResponse(f"{PREFIX}/login", 303)
    response.delete_cookie(console_sessions.COOKIE, path=PREFIX)
    return response


def routes() -> list[Route]:
    return [Route("/login", login_page, methods=["GET"]), Route("/login", login, methods=["POST"]),
            Route("/logout", action(logout), methods=["POST"])]

"""The console app mounted at ``/console``: its routes, static files and error pages.

``console_app(gw, sessions, engine)`` returns a Starlette app; ``app.py``
mounts it when ``console.enabled``.  Each page's handlers live in their own
module; this one only wires them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from clearance.console import access, assessments, audit_page, auth, directives, overview
from clearance.console.web import PREFIX, error_page, with_headers


@dataclass
class Console:
    """What the console's handlers share: the gateway's config, store, audit log and router."""

    gw: Any
    sessions: Any  # sessionmaker
    engine: Any
    jobs: dict = field(default_factory=dict)  # audit verification runs, by id

    @property
    def config(self):
        return self.gw.config

    @property
    def settings(self):
        return self.gw.config.console

    @property
    def audit(self):
        return self.gw.audit


class _Static(StaticFiles):
    """Static files with the console's security headers (and a day's caching)."""

    async def get_response(self, path: str, scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["x-content-type-options"] = "nosniff"
        response.headers["cache-control"] = "private, max-age=86400"
        return response


def console_app(gw, sessions, engine) -> Starlette:
    async def home(request: Request) -> Response:
        return with_headers(RedirectResponse(f"{PREFIX}/overview", 303))

    async def not_found(request: Request, exc: Exception) -> Response:
        return error_page(request, 404, f"There is no console page at {request.url.path}.")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return error_page(request, 405, f"{request.method} is not accepted on {request.url.path}.")

    async def server_error(request: Request, exc: Exception) -> Response:
        return error_page(request, 500, "The console could not complete this request.")

    routes = [
        Route("/", home, methods=["GET"]),
        *auth.routes(), *overview.routes(), *directives.routes(), *access.routes(), *audit_page.routes(),
        *assessments.routes(),
        Mount("/static", app=_Static(directory=str(files("clearance.console") / "static")), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed, Exception: server_error})
    app.router.redirect_slashes = False
    app.state.console = Console(gw, sessions, engine)
    return app


def console_mount(gw, sessions, engine) -> list:
    """The routes ``app.py`` adds: the console under ``/console``, and ``/console`` itself redirecting to it."""
    async def bare(request: Request) -> Response:
        return with_headers(RedirectResponse(f"{PREFIX}/overview", 303))

    return [Route(PREFIX, bare, methods=["GET"]), Mount(PREFIX, app=console_app(gw, sessions, engine))]

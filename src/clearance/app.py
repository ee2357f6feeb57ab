"""Build the ASGI app from a config: wiring, nothing else.

``create_app(config)`` opens the store, compiles the first snapshot, builds
the backends, guard and audit log, and returns a Starlette app whose
lifespan starts and stops them.  ``app_from_env`` is the factory uvicorn's
workers call, reading the config path from ``$CLEARANCE_CONFIG``.

A server process (``app_from_env``, the demo) freezes what start-up built
(``gc.freeze``) once it is ready: the store, the first snapshot, the guard's
models and the libraries are never scanned again by the cyclic garbage
collector, whose full collections otherwise paused every request for about
30 ms each time.  Requests' own objects are collected as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from clearance.api.errors import ApiError
from clearance import httpserver
from clearance.api.http import RID_KEY, build_routes, json_response, request_id
from clearance.config import Config, load_config
from clearance.logging import setup_logging
from clearance.metrics import Metrics
from clearance.pipeline import Gateway
from clearance.requestid import new_request_id
from clearance.routing.backends.anthropic import AnthropicBackend
from clearance.routing.backends.openai import OpenAIBackend
from clearance.routing.backends.transport import Timeouts, make_session
from clearance.routing.router import Router
from clearance.snapshot import SnapshotHolder
from clearance.store.db import make_engine, make_sessionmaker, migrate

log = logging.getLogger("clearance.app")


def build_backends(config: Config) -> dict:
    backends = {}
    for b in config.backends:
        timeouts = Timeouts(total=b.timeout_seconds, connect=b.connect_timeout_seconds,
                            stream_total=b.max_stream_seconds)
        cls = AnthropicBackend if b.kind == "anthropic" else OpenAIBackend
        backends[b.name] = cls(b.name, b.base_url, b.api_key(), timeouts)
    return backends


def build_guard(config: Config):
    if not config.guard.enabled:
        return None
    from clearance.guard import GuardSet

    return GuardSet(config.guard, config.path.parent if config.path else None)


def build_tracing(config: Config):
    if not config.tracing.enabled:
        return None
    from clearance.tracing import Tracing

    return Tracing(config.tracing)


def build_audit(config: Config, engine):
    if not config.audit.enabled:
        return None
    from clearance.audit.setup import open_audit_log

    return open_audit_log(config, engine)


def build_tokens(config: Config, sessions, gw: Gateway):
    """The OIDC token verifier, or None when no issuer is configured (API keys only)."""
    if not config.identity.oidc:
        return None
    from clearance.identity.provision import Provisioner
    from clearance.identity.tokens import TokenVerifier

    return TokenVerifier(config.identity, Provisioner(sessions, gw.snapshots, gw.audit))


def create_app(config: Config, freeze_after_start: bool = False) -> Starlette:
    config.state_dir.mkdir(parents=True, exist_ok=True)
    httpserver.configure(config.server)
    engine = make_engine(config.db_url)
    migrate(engine)
    sessions = make_sessionmaker(engine)
    metrics = Metrics()
    router = Router(build_backends(config), {b.name: b for b in config.backends}, metrics.observe_upstream)
    from clearance.limits.enforce import Limiter

    gw = Gateway(config=config, snapshots=SnapshotHolder(sessions, config), router=router, metrics=metrics,
                 guard=build_guard(config), audit=build_audit(config, engine), limiter=Limiter(config.limits),
                 tracing=build_tracing(config))
    gw.tokens = build_tokens(config, sessions, gw)
    witnessing = None
    if gw.audit is not None:
        from clearance.audit.refused import RefusalRecorder
        from clearance.witness.submit import submitter_from_config

        gw.refusals = RefusalRecorder(gw.audit, config.audit.refused_per_source_per_minute)
        witnessing = submitter_from_config(config, engine)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        session = make_session()
        router.bind(session)
        if gw.tokens is not None:
            gw.tokens.bind(session)
        gw.snapshots.start()
        if gw.audit is not None:
            gw.audit.start()
        witness_task = asyncio.get_running_loop().create_task(witnessing.run(session)) if witnessing else None
        ready = {"snapshot": gw.snapshots.current.hash, "models": list(gw.snapshots.current.models)}
        if gw.guard is not None:
            from clearance.guard.features import ACCELERATED
            ready["guard_c_extension"] = ACCELERATED
            if not ACCELERATED:
                log.warning("the guard's C extension is not built: n-grams are hashed with numpy "
                            "(the same scores, more CPU per prompt); reinstall with a C compiler present")
        if freeze_after_start:
            gc.collect()  # what start-up left behind goes first
            gc.freeze()
            ready["gc_frozen_objects"] = gc.get_freeze_count()
        log.info("gateway ready", extra=ready)
        try:
            yield
        finally:
            if witness_task is not None:
                witness_task.cancel()
            await gw.snapshots.stop()
            await gw.limiter.aclose()
            if gw.tracing is not None:
                gw.tracing.shutdown()  # exports what is still queued
            if gw.refusals is not None:
                gw.refusals.flush()
            if gw.audit is not None:
                await gw.audit.aclose()
            await session.close()
            engine.dispose()

    async def not_found(request: Request, exc: Exception) -> Response:
        err = ApiError(404, f"no such endpoint: {request.method} {request.url.path}", type="not_found_error",
                       code="not_found")
        return json_response(err.openai_body(request_id(request)), 404)

    async def not_allowed(request: Request, exc: Exception) -> Response:
        err = ApiError(405, f"method {request.method} not allowed on {request.url.path}", code="method_not_allowed")
        return json_response(err.openai_body(request_id(request)), 405)

    async def server_error(request: Request, exc: Exception) -> Response:
        rid = request_id(request)
        log.error("unexpected error", exc_info=exc, extra={"request_id": rid})
        err = ApiError(500, "the gateway could not serve this request", type="gateway_error", code="gateway_error")
        return json_response(err.openai_body(rid), 500)

    routes = api_routes = build_routes(gw)
    try:
        from clearance.api.admin import admin_routes

        routes = routes + admin_routes(gw, sessions)
    except ImportError:
        pass
    from clearance.scim.api import scim_routes

    routes = routes + scim_routes(sessions, gw.audit)
    from clearance.api.openapi import openapi_document

    document = orjson.dumps(openapi_document(routes))

    async def openapi(request: Request) -> Response:
        return Response(document, media_type="application/json")

    routes = routes + [Route("/openapi.json", openapi, methods=["GET"])]
    if config.console.enabled:  # the web console (console/): its own Starlette app, HTML errors, no OpenAPI
        from clearance.console.routes import console_mount

        routes = routes + console_mount(gw, sessions, engine)
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={404: not_found, 405: not_allowed, Exception: server_error})
    # No redirect to the path with or without a trailing slash: Starlette builds its Location from
    # the Host header, which the client chooses.  Such a path is a 404 like any other.
    app.router.redirect_slashes = False
    app.state.gateway = gw
    return DirectRoutes(app, routes[:len(api_routes)])


class DirectRoutes:
    """The ASGI entry point: the API's fixed paths go straight to their endpoints.

    Every request to ``/v1/...`` and the health and metrics paths is dispatched by
    one dictionary lookup; the endpoints render their own errors, so Starlette's
    routing and middleware stack is skipped on the hot path.  Everything else
    (the admin API, unknown paths, methods not allowed, lifespan) goes through
    the Starlette app, with a request id made here: every response that does not
    carry ``x-request-id`` gets it added.
    """

    def __init__(self, app: Starlette, routes: list) -> None:
        self.app = app
        self.state = app.state
        # Paths with parameters (``/v1/models/{model_id}``) go through Starlette's router.
        self.table = {(method, r.path): r.endpoint for r in routes for method in r.methods if "{" not in r.path}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            handler = self.table.get((scope["method"], scope["path"]))
            if handler is not None:
                response = await handler(Request(scope, receive))
                await response(scope, receive, send)
                return
            rid = scope[RID_KEY] = new_request_id()
            await self.app(scope, receive, _with_request_id(send, rid.encode("latin-1")))
            return
        await self.app(scope, receive, send)


def _with_request_id(send, rid: bytes):
    """``send``, adding ``x-request-id`` to a response's head that lacks one."""

    async def sender(message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers") or ())
            if not any(k.lower() == b"x-request-id" for k, _ in headers):
                headers.append((b"x-request-id", rid))
                message = {**message, "headers": headers}
        await send(message)

    return sender


def app_from_env() -> Starlette:
    config = load_config(os.environ["CLEARANCE_CONFIG"])
    setup_logging(config.server.log_format, config.server.log_level)
    return create_app(config, freeze_after_start=True)

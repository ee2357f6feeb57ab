"""The HTTP endpoints: turn requests into pipeline calls and pipeline results into responses.

Every response carries ``x-request-id``, an id the gateway makes (a client's
own ``x-request-id`` is kept as ``client_request_id`` and echoed in
``x-client-request-id``); every error is JSON in the wire format the client
speaks, never a traceback.  Bodies are read up to the configured size limit
and no further, and refused when they nest deeper than ``max_json_depth``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
import os
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone

import anyio
import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from clearance import pipeline
from clearance.api import anthropic as anthropic_wire
from clearance.api import embeddings as embeddings_wire
from clearance.api import openai as openai_wire
from clearance.api import responses as responses_wire
from clearance.api import responses_stream
from clearance.api.errors import ApiError, bad_request
from clearance.api.jsondepth import too_deep
from clearance.api.refused import AUDITED, REQ_KEY, refused_entry
from clearance.identity.keys import redact
from clearance.pipeline import Gateway
from clearance.requestid import client_request_id, new_request_id
from clearance.types import ChatRequest

log = logging.getLogger("clearance.http")
RID_KEY = "clearance.request_id"  # where a request's id is kept in its ASGI scope
CLIENT_RID_KEY = "clearance.client_request_id"


def request_id(request: Request) -> str:
    """The request's id: made by the gateway once per request (never taken from the client)."""
    rid = request.scope.get(RID_KEY)
    if rid is None:
        rid = request.scope[RID_KEY] = new_request_id()
    return rid


def parsed(req: ChatRequest, request: Request) -> ChatRequest:
    """``req`` carrying the client's own request id, if it sent a well-formed one; kept in the
    scope for the audit entry of a refusal."""
    crid = request.scope.get(CLIENT_RID_KEY)
    if crid:
        req = dataclasses.replace(req, client_request_id=crid)
    request.scope[REQ_KEY] = req
    return req


def api_key_of(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return request.headers.get("x-api-key") or None


def json_response(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


async def read_json(request: Request, limit: int, empty: object = None, max_depth: int = 64) -> object:
    """The request's JSON body, read up to ``limit`` bytes and nested at most ``max_depth`` deep;
    ``empty`` is returned for no body if given."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise ApiError(413, f"request body is larger than {limit} bytes", code="request_too_large")
        except ValueError:
            raise bad_request("invalid Content-Length header") from None
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise ApiError(413, f"request body is larger than {limit} bytes", code="request_too_large")
    except ClientDisconnect:
        raise bad_request("client disconnected while sending the body") from None
    if not body:
        if empty is not None:
            return empty
        raise bad_request("request body is empty; expected a JSON object")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise bad_request(f"request body is not valid JSON: {e}") from None
    if too_deep(body, value, max_depth):
        raise ApiError(400, f"request body nests deeper than {max_depth} levels", code="json_too_deep")
    return value


Handler = Callable[[Request, str], Awaitable[Response]]


def endpoint(gw: Gateway, name: str, wire: str, handler: Handler):
    """Wrap a handler: request id, error rendering, metrics and one log line per request."""

    async def run(request: Request) -> Response:
        rid = new_request_id()
        crid = client_request_id(request.headers.get("x-request-id"))
        if crid:
            request.scope[CLIENT_RID_KEY] = crid
        started = time.perf_counter()
        try:
            response = await handler(request, rid)
        except ApiError as err:
            body = err.anthropic_body(rid) if wire == "anthropic" else err.openai_body(rid)
            response = json_response(body, err.status, err.headers)
            if err.status >= 500 or err.status in (401, 403):
                log.info("request refused", extra={"request_id": rid, "status": err.status, "code": err.code,
                                                   "key": redact(api_key_of(request) or "")})
            if err.status in AUDITED and gw.refusals is not None:
                _record_refusal(gw, request, rid, crid, err)
        except Exception:
            log.exception("unexpected error", extra={"request_id": rid})
            err = ApiError(502, "the gateway could not serve this request", type="gateway_error", code="gateway_error")
            body = err.anthropic_body(rid) if wire == "anthropic" else err.openai_body(rid)
            response = json_response(body, 502)
        # Straight onto the raw header list (no endpoint sets this header itself); the id is ASCII.
        response.raw_headers.append((b"x-request-id", rid.encode("latin-1")))
        if crid:
            response.raw_headers.append((b"x-client-request-id", crid.encode("latin-1")))
        gw.metrics.requests.labels(name, str(response.status_code)).inc()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("request", extra={"request_id": rid, "endpoint": name, "status": response.status_code,
                                        "ms": round((time.perf_counter() - started) * 1000, 3)})
        return response

    return run


def _record_refusal(gw: Gateway, request: Request, rid: str, crid: str, err: ApiError) -> None:
    try:
        gw.refusals.record(refused_entry(gw, request, rid, crid, err, api_key_of(request)))
    except Exception:
        log.exception("refused request not recorded", extra={"request_id": rid})


class EventStream(StreamingResponse):
    """A streamed answer that stops when the client leaves, without a task group per stream.

    Starlette runs each streaming response in an anyio task group whose second
    task listens for the client leaving.  Here the events are sent from the
    request's own task inside one cancel scope, and one plain asyncio task
    waits for ``http.disconnect`` and cancels that scope: the stream's chunks
    see the cancellation (the pipeline records the completion as abandoned,
    499, in a shielded scope that this cancellation respects), and it ends at
    the scope, as it ends at Starlette's task group.
    """

    async def __call__(self, scope, receive, send) -> None:
        with anyio.CancelScope() as stream_scope:
            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                stream_scope.cancel()

            watcher = asyncio.get_running_loop().create_task(watch())
            try:
                await self.stream_response(send)
            finally:
                watcher.cancel()


def _sse(stream, backend: str) -> StreamingResponse:
    return EventStream(stream, media_type="text/event-stream",
                       headers={"x-clearance-backend": backend, "cache-control": "no-cache"})


def build_routes(gw: Gateway) -> list[Route]:
    limit = gw.config.server.max_body_bytes
    depth = gw.config.server.max_json_depth

    async def chat_completions(request: Request, rid: str) -> Response:
        body = await read_json(request, limit, max_depth=depth)
        req = parsed(openai_wire.parse_request(body, rid), request)
        adm = await pipeline.admit(gw, req, api_key_of(request), request.headers.get("traceparent"))
        if not req.stream:
            result = await pipeline.complete(gw, adm, req)
            return json_response(openai_wire.render_result(result, req),
                                 headers={"x-clearance-backend": result.backend})
        backend, chunks = await pipeline.open_stream(gw, adm, req)
        options = body.get("stream_options") if isinstance(body, dict) else None
        include_usage = bool(options.get("include_usage")) if isinstance(options, dict) else False
        return _sse(openai_wire.render_stream(chunks, req, include_usage), backend)

    async def responses(request: Request, rid: str) -> Response:
        body = await read_json(request, limit, max_depth=depth)
        req, echo = responses_wire.parse_request(body, rid)
        req = parsed(req, request)
        adm = await pipeline.admit(gw, req, api_key_of(request), request.headers.get("traceparent"))
        if not req.stream:
            result = await pipeline.complete(gw, adm, req)
            return json_response(responses_wire.render_result(result, req, echo),
                                 headers={"x-clearance-backend": result.backend})
        backend, chunks = await pipeline.open_stream(gw, adm, req)
        return _sse(responses_stream.render_stream(chunks, req, echo), backend)

    async def messages(request: Request, rid: str) -> Response:
        body = await read_json(request, limit, max_depth=depth)
        req = parsed(anthropic_wire.parse_request(body, rid, {h: v for h in anthropic_wire.FORWARDED_HEADERS
                                                                      if (v := request.headers.get(h))}), request)
        adm = await pipeline.admit(gw, req, api_key_of(request), request.headers.get("traceparent"))
        mid = "msg_" + rid.removeprefix("req_")
        if not req.stream:
            result = await pipeline.complete(gw, adm, req)
            return json_response(anthropic_wire.render_message(result, req, mid),
                                 headers={"x-clearance-backend": result.backend})
        backend, chunks = await pipeline.open_stream(gw, adm, req)
        return _sse(anthropic_wire.render_stream(chunks, req, mid), backend)

    async def usable_models(request: Request) -> list[str]:
        now = datetime.now(timezone.utc)
        snapshot, principal = await pipeline.caller(gw, api_key_of(request), now)
        allowed = set(snapshot.policy.allowed_models(principal, now, principal.use_case))
        return [m for m in snapshot.models if m in allowed]

    async def models(request: Request, rid: str) -> Response:
        names = await usable_models(request)
        if "anthropic-version" in request.headers:  # an Anthropic client lists models in its own shape
            return json_response(anthropic_wire.render_models(names))
        return json_response(openai_wire.render_models(names))

    async def model(request: Request, rid: str) -> Response:
        """One model, for a caller who may use it; any other name is a 404, used or not."""
        name = request.path_params["model_id"]
        if name not in await usable_models(request):
            raise ApiError(404, f"model {name!r} does not exist", type="not_found_error", code="model_not_found",
                           param="model")
        if "anthropic-version" in request.headers:
            return json_response(anthropic_wire.render_model(name))
        return json_response(openai_wire.render_models([name])["data"][0])

    async def embeddings(request: Request, rid: str) -> Response:
        body = await read_json(request, limit, max_depth=depth)
        req = parsed(embeddings_wire.parse_request(body, rid), request)
        adm = await pipeline.admit(gw, req, api_key_of(request), request.headers.get("traceparent"), "embeddings")
        result = await pipeline.embed(gw, adm, req)
        return json_response(embeddings_wire.render_result(result, req), headers={"x-clearance-backend": result.backend})

    async def count_tokens(request: Request, rid: str) -> Response:
        body = await read_json(request, limit, max_depth=depth)
        if not isinstance(body, dict):
            raise bad_request("The request body must be a JSON object.")
        # The same body as a message, less max_tokens, which counting does not take.
        req = anthropic_wire.parse_request({**body, "max_tokens": body.get("max_tokens") or 1}, rid,
                                           {h: v for h in anthropic_wire.FORWARDED_HEADERS
                                            if (v := request.headers.get(h))})
        count, how = await pipeline.count_tokens(gw, req, api_key_of(request))
        return json_response({"input_tokens": count}, headers={"x-clearance-token-count": how})

    async def healthz(request: Request, rid: str) -> Response:
        return json_response({"status": "ok"})

    async def readyz(request: Request, rid: str) -> Response:
        snap = gw.snapshots.current
        problems = list(snap.errors)
        if gw.audit is not None and not getattr(gw.audit, "healthy", True):
            problems.append("audit log is not accepting entries")
        status = 503 if problems else 200
        return json_response({"status": "ready" if not problems else "not_ready", "snapshot": snap.hash,
                              "version": snap.version, "problems": problems}, status)

    token_env = gw.config.server.metrics_token_env
    metrics_token = (os.environ.get(token_env) or "").encode() if token_env else None

    async def metrics(request: Request, rid: str) -> Response:
        if metrics_token is not None:  # an empty token (variable unset) matches nothing: closed
            auth = request.headers.get("authorization", "").encode()
            if not (metrics_token and hmac.compare_digest(auth, b"Bearer " + metrics_token)):
                raise ApiError(401, "/metrics needs 'Authorization: Bearer <metrics token>'",
                               type="authentication_error", code="invalid_metrics_token")
        return Response(gw.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    def route(path: str, name: str, wire: str, handler: Handler, methods: list[str]) -> Route:
        return Route(path, endpoint(gw, name, wire, handler), methods=methods)

    return [
        route("/v1/chat/completions", "chat_completions", "openai", chat_completions, ["POST"]),
        route("/v1/responses", "responses", "openai", responses, ["POST"]),
        route("/v1/messages", "messages", "anthropic", messages, ["POST"]),
        route("/v1/models", "models", "openai", models, ["GET"]),
        route("/v1/models/{model_id:path}", "model", "openai", model, ["GET"]),
        route("/v1/embeddings", "embeddings", "openai", embeddings, ["POST"]),
        route("/v1/messages/count_tokens", "count_tokens", "anthropic", count_tokens, ["POST"]),
        route("/healthz", "healthz", "openai", healthz, ["GET"]),
        route("/readyz", "readyz", "openai", readyz, ["GET"]),
        route("/metrics", "metrics", "openai", metrics, ["GET"]),
    ]

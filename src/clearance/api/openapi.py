"""The OpenAPI 3.1 document served at ``/openapi.json``: the public API and the admin API.

The public endpoints are described by hand (what ``api/openai.py`` and
``api/anthropic.py`` read; other fields pass through).  The admin endpoints
are listed from the app's routes as they are mounted, each taking or
returning a JSON object, so a route added there appears here without an edit.
Every error has the shape of ``ApiError``'s bodies.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

_ERROR = {"type": "object", "properties": {"error": {"type": "object"}, "request_id": {"type": "string"}}}
_STATUSES = {"400": "malformed request", "401": "missing or invalid credentials", "403": "denied by policy",
             "404": "no such model or object", "413": "body too large", "429": "rate limited upstream",
             "502": "the upstream failed", "503": "unavailable", "504": "the upstream timed out"}

_CONTENT = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]}
_CHAT = {
    "type": "object", "required": ["model", "messages"],
    "properties": {
        "model": {"type": "string"},
        "messages": {"type": "array", "items": {"type": "object", "required": ["role"], "properties": {
            "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
            "content": _CONTENT, "name": {"type": "string"}}}},
        "stream": {"type": "boolean"}, "max_tokens": {"type": "integer", "minimum": 1},
        "temperature": {"type": "number"}, "top_p": {"type": "number"},
        "stop": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "tools": {"type": "array", "items": {"type": "object"}},
    },
}
_MESSAGES = {
    "type": "object", "required": ["model", "max_tokens", "messages"],
    "properties": {
        "model": {"type": "string"}, "max_tokens": {"type": "integer", "minimum": 1},
        "system": _CONTENT, "stream": {"type": "boolean"},
        "messages": {"type": "array", "items": {"type": "object", "required": ["role", "content"], "properties": {
            "role": {"type": "string", "enum": ["user", "assistant"]}, "content": _CONTENT}}},
        "temperature": {"type": "number"}, "top_p": {"type": "number"},
        "stop_sequences": {"type": "array", "items": {"type": "string"}},
        "tools": {"type": "array", "items": {"type": "object"}},
    },
}


def _responses(ok: str, *errors: str) -> dict[str, Any]:
    out: dict[str, Any] = {"200": {"description": ok, "content": {"application/json": {"schema": {"type": "object"}}}}}
    for code in errors:
        out[code] = {"description": _STATUSES[code], "content": {"application/json": {"schema": _ERROR}}}
    return out


def _post(summary: str, schema: dict, security: str) -> dict[str, Any]:
    return {"summary": summary, "security": [{security: []}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
            "responses": _responses("the answer (or a text/event-stream when stream is true)",
                                    *_STATUSES)}


def _public() -> dict[str, Any]:
    health = {"get": {"summary": "liveness", "responses": _responses("alive")}}
    return {
        "/v1/chat/completions": {"post": _post("OpenAI chat completions", _CHAT, "bearer")},
        "/v1/messages": {"post": _post("Anthropic messages", _MESSAGES, "apiKey")},
        "/v1/models": {"get": {"summary": "the models this caller may use", "security": [{"bearer": []}],
                               "responses": _responses("a model list", "401")}},
        "/healthz": health,
        "/readyz": {"get": {"summary": "readiness", "responses": _responses("ready", "503")}},
        "/metrics": {"get": {"summary": "Prometheus metrics (a bearer token when metrics_token_env is set)",
                             "responses": {"200": {"description": "metrics",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}},
                                           "401": {"description": _STATUSES["401"]}}}},
    }


def _admin(routes: list[Route]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for r in routes:
        if not isinstance(r, Route) or not r.path.startswith("/admin/"):
            continue
        params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                  for name in r.param_convertors]
        for method in sorted((r.methods or set()) - {"HEAD"}):
            op: dict[str, Any] = {"summary": f"admin: {r.name}", "security": [{"bearer": []}],
                                  "responses": _responses("done", "400", "401", "404")}
            if params:
                op["parameters"] = params
            if method == "POST":
                op["requestBody"] = {"content": {"application/json": {"schema": {"type": "object"}}}}
            paths.setdefault(r.path, {})[method.lower()] = op
    return paths


def openapi_document(routes: list[Route]) -> dict[str, Any]:
    """The document for an app mounting ``routes`` (the admin routes among them are listed)."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Clearance", "version": "1",
                 "description": "Who may use which AI model, screened, routed and audited."},
        "paths": {**_public(), **_admin(routes)},
        "components": {"securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}}},
    }

"""Errors the gateway answers with, and their JSON bodies.

Every error a client sees is an ``ApiError``: a status, a type, a code, a
message and the request id.  The OpenAI wire format renders it as
``{"error": {...}}``; the Anthropic one as ``{"type": "error", "error": {...}}``.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None,
                 reasons: list[dict[str, str]] | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code or type
        self.param = param
        self.reasons = reasons or []
        self.headers = headers or {}

    def openai_body(self, request_id: str) -> dict[str, Any]:
        err: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code,
                               "param": self.param, "request_id": request_id}
        if self.reasons:
            err["reasons"] = self.reasons
        return {"error": err}

    def anthropic_body(self, request_id: str) -> dict[str, Any]:
        kind = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                504: "timeout_error"}.get(self.status, "api_error")
        err: dict[str, Any] = {"type": kind, "message": self.message, "code": self.code}
        if self.reasons:
            err["reasons"] = self.reasons
        return {"type": "error", "error": err, "request_id": request_id}


def bad_request(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, param=param)

"""Read one HTTP answer of an OpenAI-compatible endpoint into a plain ``Reply``.

Recognises Clearance's own denials (HTTP 403 with ``error.type`` of
``guard_blocked`` or ``policy_denied``) and provider content filters as
"blocked by a gateway", distinct from a model's own refusal, and says which
failures are worth a retry and which mean the run cannot go on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

RETRYABLE = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
_GATEWAY_TYPES = {"guard_blocked": "guard", "policy_denied": "policy"}


class FatalTargetError(Exception):
    """The target cannot be assessed at all (bad key, wrong URL or model); the message says why."""


@dataclass(frozen=True, slots=True)
class Reply:
    """What one request came back with.  ``error`` is set when there is no answer to judge."""

    status: int
    text: str = ""
    blocked_by: str = ""  # "" | "guard" | "policy" | "provider"
    reasons: tuple[str, ...] = ()
    request_id: str = ""
    finish_reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _error_obj(data: Any) -> dict[str, Any]:
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return data["error"]
    return {}


def parse_reply(status: int, headers: Mapping[str, str], body: bytes) -> Reply:
    """Classify one response.  Raises ``FatalTargetError`` for auth and addressing failures."""
    data = _json(body)
    rid = headers.get("x-request-id", "")
    err = _error_obj(data)
    if status == 200:
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list) or not data["choices"]:
            return Reply(status=status, request_id=rid, error="200 response without choices")
        choice = data["choices"][0] if isinstance(data["choices"][0], dict) else {}
        msg = choice.get("message") or {}
        content = msg.get("content") if isinstance(msg, dict) else None
        if isinstance(content, list):  # multi-part content
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        text = content if isinstance(content, str) else ""
        if not text and isinstance(msg, dict) and isinstance(msg.get("refusal"), str):
            text = msg["refusal"]
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        finish = str(choice.get("finish_reason") or "")
        return Reply(status=status, text=text, request_id=rid or str(data.get("id", "")),
                     finish_reason=finish, blocked_by="provider" if finish == "content_filter" else "",
                     prompt_tokens=int(usage.get("prompt_tokens") or 0),
                     completion_tokens=int(usage.get("completion_tokens") or 0))
    kind = str(err.get("type") or err.get("code") or "")
    if status == 403 and kind in _GATEWAY_TYPES:
        reasons = tuple(str(r.get("id", "")) for r in err.get("reasons") or [] if isinstance(r, dict))
        return Reply(status=status, blocked_by=_GATEWAY_TYPES[kind], reasons=reasons,
                     request_id=rid or str(err.get("request_id", "")), text=str(err.get("message", "")))
    if status == 400 and "content_filter" in (str(err.get("code", "")), str(err.get("type", ""))):
        return Reply(status=status, blocked_by="provider", request_id=rid, text=str(err.get("message", "")))
    message = str(err.get("message", "")) if err else body[:200].decode("utf-8", "replace")
    if status in (401, 403):
        raise FatalTargetError(f"the target refused the API key (HTTP {status}: {message or 'no detail'}); "
                               "check --api-key")
    if status == 404:
        raise FatalTargetError(f"HTTP 404 from the target ({message or 'not found'}); check --base-url and --model")
    return Reply(status=status, request_id=rid, error=f"HTTP {status}: {message}".strip())

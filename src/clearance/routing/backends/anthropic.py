"""An upstream Anthropic Messages API, called for requests of any wire format.

``AnthropicBackend`` translates a neutral ``ChatRequest`` into a
``POST {base_url}/v1/messages`` call, reads the JSON answer or the
server-sent event stream back into a ``ChatResult`` or ``ChatChunk`` values,
and maps every failure to an ``UpstreamError`` whose ``status`` and
``retryable`` tell the router what to do.  Error messages name the backend
and the upstream's own explanation, never the API key.
"""

from __future__ import annotations

import json
from contextlib import aclosing
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from clearance.routing.backends import translate
from clearance.routing.backends.base import UpstreamError, other_format_error
from clearance.tracing import upstream_headers
from clearance.routing.backends.transport import (TRANSPORT_ERRORS, Timeouts, iter_sse_batches, redirect_error,
                                                  transport_error)
from clearance.types import ChatChunk, ChatRequest, ChatResult, Usage

DEFAULT_MAX_TOKENS = 1024

# Anthropic stop_reason -> neutral (OpenAI vocabulary) finish_reason.
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# Error types in an upstream ``error`` event that the same request will never get past.
_FINAL_ERROR_TYPES = frozenset({
    "invalid_request_error", "authentication_error", "permission_error", "not_found_error",
    "request_too_large",
})

_MAX_MESSAGE_CHARS = 300


def finish_reason(stop_reason: str | None) -> str:
    """The neutral finish reason for an Anthropic ``stop_reason``."""
    return _FINISH_REASONS.get(stop_reason or "end_turn", "stop")


# An OpenAI-format request's parameters (``ChatRequest.params``) this backend expresses: tools and
# their choice are translated, ``user`` becomes ``metadata.user_id``.  The hints after them change
# nothing in the answer (storage and caching on the provider's side, the caller's abuse-tracking id)
# and are not forwarded.  Any other parameter set to something other than null (seed,
# response_format, logprobs, penalties, reasoning_effort, a server's own options, ...) has no
# counterpart here: the request is refused naming it, never served without it.
_TRANSLATED_PARAMS = frozenset({"tools", "tool_choice", "parallel_tool_calls", "user", "top_k"})
_OPENAI_HINTS = frozenset({"store", "metadata", "service_tier", "prompt_cache_key", "prompt_cache_retention",
                           "safety_identifier"})
# Client hints the gateway reads and does not forward (see api/anthropic.py).
_NOT_FORWARDED = frozenset({"service_tier", "speed", "user_profile_id", "workspace_id", "diagnostics"})


def _refuse_openai_only(req: ChatRequest) -> None:
    for name, value in req.params.items():
        if name in _TRANSLATED_PARAMS or name in _OPENAI_HINTS or value is None:
            continue
        if (name == "logprobs" and value is False) or (name == "response_format" and isinstance(value, dict)
                                                         and value.get("type") == "text"):
            continue  # the same as not asking: plain text is what this backend answers
        raise other_format_error(name)


def build_body(req: ChatRequest, model: str, *, stream: bool) -> dict[str, Any]:
    """The Messages API request body for a neutral request.

    A request that came in this format is forwarded as the client sent it (tools, content
    blocks, thinking, cache_control, ...), with the upstream's model name.
    """
    if req.wire == "anthropic" and req.raw:
        body = {k: v for k, v in req.raw.items() if k not in _NOT_FORWARDED and k != "stream"}
        body["model"] = model
        if stream:
            body["stream"] = True
        return body
    _refuse_openai_only(req)
    if translate.openai_needs_translation(req.params, req.messages):  # tools, tool calls, images
        body = _text_body(req, model, stream=stream)
        body["messages"] = translate.anthropic_turns([m for m in req.messages if m.role != "system"])
        body.update(translate.anthropic_tools(req.params))
        return body
    return _text_body(req, model, stream=stream)


def _text_body(req: ChatRequest, model: str, *, stream: bool) -> dict[str, Any]:
    system = "\n\n".join(m.content for m in req.messages if m.role == "system" and m.content)
    turns: list[dict[str, str]] = []
    others = [m for m in req.messages if m.role != "system"]
    for i, message in enumerate(others):
        role = "assistant" if message.role == "assistant" else "user"
        content = message.content
        if not content:
            # The API rejects empty turns, except a final assistant prefill.
            if not (role == "assistant" and i == len(others) - 1):
                continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] = f"{turns[-1]['content']}\n\n{content}" if content else turns[-1]["content"]
        else:
            turns.append({"role": role, "content": content})
    if turns and turns[-1]["role"] == "assistant" and not turns[-1]["content"]:
        turns.pop()

    body: dict[str, Any] = {
        "model": model,
        "max_tokens": req.max_tokens or DEFAULT_MAX_TOKENS,
        "messages": turns,
    }
    if system:
        body["system"] = system
    if req.temperature is not None:
        body["temperature"] = min(max(req.temperature, 0.0), 1.0)
    if req.top_p is not None:
        body["top_p"] = req.top_p
    if req.stop:
        body["stop_sequences"] = list(req.stop)
    top_k = req.params.get("top_k")
    if isinstance(top_k, int) and not isinstance(top_k, bool):
        body["top_k"] = top_k
    user = req.params.get("user")
    if isinstance(user, str) and user:
        body["metadata"] = {"user_id": user}
    if stream:
        body["stream"] = True
    return body


# The fields of a Messages API body that count_tokens takes.
_COUNTED = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking", "context_management",
                      "output_config", "mcp_servers"})


class AnthropicBackend:
    """One upstream Anthropic Messages API server.

    The ``aiohttp.ClientSession`` is shared and owned by the caller (bound at
    start-up); ``aclose`` releases nothing of its own.
    """

    def __init__(self, name: str, base_url: str, api_key: str | None, timeouts: Timeouts = Timeouts(),
                 session: aiohttp.ClientSession | None = None, anthropic_version: str = "2023-06-01"):
        self.name = name
        base = base_url.rstrip("/")
        self._url = f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"
        self._api_key = api_key
        self.session = session
        self._timeouts = timeouts
        self._headers = {"anthropic-version": anthropic_version, "content-type": "application/json"}
        if api_key:
            self._headers["x-api-key"] = api_key

    # ------------------------------------------------------------------ public

    async def count_tokens(self, req: ChatRequest, model: str) -> tuple[int, str]:
        """The upstream's own count of the request's input tokens (``/v1/messages/count_tokens``)."""
        body = {k: v for k, v in build_body(req, model, stream=False).items() if k in _COUNTED}
        try:
            async with self.session.post(self._url + "/count_tokens", data=orjson.dumps(body),
                                         headers=self._headers_for(req), timeout=self._timeouts.for_call(),
                                         allow_redirects=False) as r:
                status, raw = r.status, await r.read()
        except TRANSPORT_ERRORS as exc:
            raise self._transport_error(exc) from None
        if status != 200:
            raise self._status_error(status, raw)
        try:
            count = orjson.loads(raw)["input_tokens"]
            if not _is_count(count):
                raise ValueError
        except Exception:
            raise self._error("answered count_tokens without input_tokens") from None
        return count, "upstream"

    async def complete(self, req: ChatRequest, model: str) -> ChatResult:
        body = build_body(req, model, stream=False)
        try:
            async with self.session.post(self._url, data=orjson.dumps(body), headers=self._headers_for(req),
                                         timeout=self._timeouts.for_call(), allow_redirects=False) as response:
                status, raw = response.status, await response.read()
        except TRANSPORT_ERRORS as exc:
            raise self._transport_error(exc) from None
        if status != 200:
            raise self._status_error(status, raw)
        try:
            data = orjson.loads(raw)
        except ValueError:
            raise self._error("answered with a body that is not JSON") from None
        if not isinstance(data, dict) or data.get("type") == "error":
            raise self._error(f"answered with an error: {self._upstream_message(data)}")
        content = data.get("content")
        if not isinstance(content, list):
            raise self._error("answered without a content list")
        text = "".join(b.get("text", "") for b in content
                       if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str))
        return ChatResult(
            content=text,
            finish_reason=finish_reason(data.get("stop_reason")),
            usage=_usage(data.get("usage")),
            backend=self.name,
            upstream_model=str(data.get("model") or model),
            raw=data,
            raw_wire="anthropic",
            calls_text="\n".join(json.dumps(b.get("input"), ensure_ascii=False, sort_keys=True) for b in content
                                 if isinstance(b, dict) and b.get("type") == "tool_use"),
        )

    async def stream(self, req: ChatRequest, model: str) -> AsyncIterator[ChatChunk]:
        body = build_body(req, model, stream=True)
        headers = {**self._headers_for(req), "accept": "text/event-stream"}
        try:
            async with self.session.post(self._url, data=orjson.dumps(body), headers=headers,
                                         timeout=self._timeouts.for_stream(), allow_redirects=False) as response:
                if response.status != 200:
                    raise self._status_error(response.status, await response.read())
                finished = False
                async with aclosing(self._read_events(response)) as chunks:
                    async for chunk in chunks:
                        finished = finished or chunk.finish_reason is not None
                        yield chunk
        except TRANSPORT_ERRORS as exc:
            raise self._transport_error(exc) from None
        if not finished:
            raise self._error("ended its stream before message_stop")

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the caller."""

    def _headers_for(self, req: ChatRequest) -> dict[str, str]:
        """The call's headers: a client of this format's ``anthropic-version`` and ``anthropic-beta`` go along."""
        if req.wire != "anthropic" or not req.headers:
            return upstream_headers(self._headers)
        return upstream_headers({**self._headers, **req.headers})

    # ------------------------------------------------------------------ stream parsing

    async def _read_events(self, response: aiohttp.ClientResponse) -> AsyncIterator[ChatChunk]:
        """Chunks from the event stream; text that arrived in one network read is merged into one chunk."""
        state = _StreamState()

        def piece(text: list[str], **kw: Any) -> ChatChunk:
            # The content-block events go with the text, unchanged, for a client that speaks this format.
            raw, state.raw = tuple(state.raw), []
            calls = "".join(e["delta"]["partial_json"] for e in raw if e.get("type") == "content_block_delta"
                            and isinstance(e.get("delta"), dict) and e["delta"].get("type") == "input_json_delta"
                            and isinstance(e["delta"].get("partial_json"), str))
            return ChatChunk(delta="".join(text), raw=raw, raw_wire="anthropic", calls_text=calls, **kw)

        async for events in iter_sse_batches(response):
            text: list[str] = []
            for event, data in events:
                try:
                    stop = self._take_event(event, data, state, text)
                except UpstreamError:
                    if text:  # what arrived before the failure is still delivered
                        yield piece(text)
                    raise
                if stop:
                    if text:
                        yield piece(text)
                    yield piece([], finish_reason=finish_reason(state.stop),
                                usage=Usage(prompt_tokens=state.input_tokens, completion_tokens=state.output_tokens))
                    return
            # An empty text block opening is held back until content follows, so a stream that fails
            # before its first content can still fall back to the route's next backend.
            if text or any(_is_content(e) for e in state.raw):
                yield piece(text)

    def _take_event(self, event: str, data: str, state: "_StreamState", text: list[str]) -> bool:
        """Apply one event to the stream state; True at ``message_stop``."""
        if event == "ping" or not data:
            return False
        try:
            payload = json.loads(data)
        except ValueError:
            raise self._error(f"sent a {event or 'message'} event that is not JSON") from None
        if not isinstance(payload, dict):
            raise self._error(f"sent a malformed {event or 'message'} event")
        kind = event or payload.get("type")
        if kind == "error":
            err = payload.get("error") if isinstance(payload.get("error"), dict) else {}
            retryable = err.get("type") not in _FINAL_ERROR_TYPES
            raise self._error(f"failed mid-stream: {self._upstream_message(payload)}", retryable=retryable)
        if kind == "message_start":
            usage = _usage((payload.get("message") or {}).get("usage"))
            state.input_tokens = usage.prompt_tokens
            state.output_tokens = usage.completion_tokens
        if kind in ("content_block_start", "content_block_delta", "content_block_stop", "message_delta"):
            state.raw.append(payload)
        if kind == "content_block_start":
            block = payload.get("content_block") or {}
            if block.get("type") == "text" and isinstance(block.get("text"), str) and block["text"]:
                text.append(block["text"])
        elif kind == "content_block_delta":
            delta = payload.get("delta") or {}
            if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str) and delta["text"]:
                text.append(delta["text"])
        elif kind == "message_delta":
            state.stop = (payload.get("delta") or {}).get("stop_reason") or state.stop
            usage = payload.get("usage") or {}
            if _is_count(usage.get("output_tokens")):
                state.output_tokens = usage["output_tokens"]
            if _is_count(usage.get("input_tokens")):
                state.input_tokens = _usage(usage).prompt_tokens
        elif kind == "message_stop":
            return True
        return False

    # ------------------------------------------------------------------ errors

    def _error(self, what: str, *, status: int = 502, retryable: bool = True,
               upstream_status: int | None = None) -> UpstreamError:
        message = self._scrub(f"Backend {self.name!r} {what}")
        return UpstreamError(message, status=status, retryable=retryable, upstream_status=upstream_status)

    def _transport_error(self, exc: BaseException) -> UpstreamError:
        err = transport_error(self.name, exc)
        return UpstreamError(self._scrub(err.message), status=err.status, retryable=err.retryable)

    def _status_error(self, status: int, raw: bytes) -> UpstreamError:
        if 300 <= status < 400:
            return redirect_error(self.name, status)
        try:
            data: object = json.loads(raw) if raw else None
        except ValueError:
            data = None
        detail = self._upstream_message(data)
        what = f"answered HTTP {status}" + (f": {detail}" if detail else "")
        if status == 429:
            return self._error(what, status=429, upstream_status=429)
        if status >= 500 or status == 529:
            return self._error(what, upstream_status=status)
        return self._error(what, retryable=False, upstream_status=status)

    @staticmethod
    def _upstream_message(data: object) -> str:
        if isinstance(data, dict):
            err = data.get("error")
            if isinstance(err, dict) and isinstance(err.get("message"), str):
                kind = err.get("type")
                text = f"{kind}: {err['message']}" if isinstance(kind, str) else err["message"]
                return text[:_MAX_MESSAGE_CHARS]
        return ""

    def _scrub(self, message: str) -> str:
        if self._api_key:
            message = message.replace(self._api_key, "[redacted]")
        return message


class _StreamState:
    """What a stream has told so far: token counts and the stop reason."""

    def __init__(self) -> None:
        self.input_tokens = 0
        self.output_tokens = 0
        self.stop: str | None = None
        self.raw: list[dict[str, Any]] = []  # block and message_delta events not yet handed on


def _is_content(event: dict[str, Any]) -> bool:
    """Whether an event is content (not an empty text block's opening, a block's end, or a message delta)."""
    kind = event.get("type")
    if kind == "content_block_start":
        block = event.get("content_block") or {}
        return not (block.get("type") == "text" and not block.get("text"))
    return kind == "content_block_delta"


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _usage(raw: object) -> Usage:
    """Neutral usage from an Anthropic usage object; cached input counts as input."""
    if not isinstance(raw, dict):
        return Usage()
    prompt = sum(raw[k] for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
                 if _is_count(raw.get(k)))
    completion = raw["output_tokens"] if _is_count(raw.get("output_tokens")) else 0
    return Usage(prompt_tokens=prompt, completion_tokens=completion)

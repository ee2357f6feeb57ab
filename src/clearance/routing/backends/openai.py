"""Backend for any OpenAI-compatible chat completions server.

vLLM, Ollama, llama.cpp server, TGI and hosted APIs all speak this format.
Transport errors and bad statuses become ``UpstreamError`` with the status
the gateway should answer with and whether a fallback may be tried.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from clearance.routing.backends import translate
from clearance.routing.backends.base import UpstreamError, other_format_error
from clearance.tracing import upstream_headers
from clearance.routing.backends.transport import (TRANSPORT_ERRORS, Timeouts, iter_sse_batches, redirect_error,
                                                  transport_error)
from clearance.types import ChatChunk, ChatRequest, ChatResult, EmbeddingResult, Usage


def status_error(name: str, status: int, body: bytes) -> UpstreamError:
    detail = ""
    try:
        err = orjson.loads(body).get("error")
        detail = (err.get("message") if isinstance(err, dict) else str(err or ""))[:300]
    except Exception:
        pass
    if 300 <= status < 400:
        return redirect_error(name, status)
    msg = f"backend {name} answered {status}" + (f": {detail}" if detail else "")
    if status == 429:
        return UpstreamError(msg, status=429, retryable=True, upstream_status=status)
    if status >= 500:
        return UpstreamError(msg, status=502, retryable=True, upstream_status=status)
    return UpstreamError(msg, status=502, retryable=False, upstream_status=status)


_PASSTHROUGH_FIELDS = ("name", "tool_calls", "tool_call_id", "content")

# What an Anthropic-format request may hold that this backend cannot yet translate: refused, never dropped.
# Tools, tool_use/tool_result blocks and images are translated (translate.py); the rest is refused.
# Earlier turns' thinking blocks are another model's private reasoning, signed or encrypted for it:
# like the Messages API itself does with earlier turns' thinking, they are left out of the context.
_ANTHROPIC_ONLY_BLOCKS = frozenset({"document"})
_EFFORTS = frozenset({"low", "medium", "high"})


def _refuse_anthropic_only(req: ChatRequest) -> dict[str, Any]:
    """Refuse by name what this backend cannot express; return what it expresses in its own terms."""
    out: dict[str, Any] = {}
    thinking = req.raw.get("thinking")
    # "adaptive" lets the model decide whether to think: a model that does not is within it.
    if thinking is not None and not (isinstance(thinking, dict) and thinking.get("type") in ("disabled", "adaptive")):
        raise other_format_error("thinking")
    for i, edit in enumerate((req.raw.get("context_management") or {}).get("edits") or ()):
        kind = edit.get("type") if isinstance(edit, dict) else None
        if not (isinstance(kind, str) and kind.startswith("clear_thinking")):  # no thinking reaches this backend
            raise other_format_error(f"context_management.edits.{i}: {kind} edits")
    for key, value in (req.raw.get("output_config") or {}).items():
        if key == "effort" and value in _EFFORTS:
            out["reasoning_effort"] = value
        elif key == "format" and isinstance(value, dict) and value.get("type") == "json_schema":
            out["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "output", "schema": value.get("schema") or {}, "strict": True}}
        elif value is not None:
            raise other_format_error(f"output_config.{key}" + (f": {value!r}" if key == "effort" else ""))
    if req.raw.get("inference_geo") is not None:
        raise other_format_error("inference_geo")
    for i, m in enumerate(req.raw.get("messages") or ()):
        content = m.get("content") if isinstance(m, dict) else None
        for j, block in enumerate(content if isinstance(content, list) else ()):
            if isinstance(block, dict) and block.get("type") in _ANTHROPIC_ONLY_BLOCKS:
                raise other_format_error(f"messages.{i}.content.{j}: {block['type']} blocks")
    return out


def request_body(req: ChatRequest, model: str) -> dict[str, Any]:
    body: dict[str, Any] = dict(req.params)
    body["model"] = model
    if req.wire == "anthropic" and req.raw:
        body.update(_refuse_anthropic_only(req))
    if req.wire == "anthropic" and translate.needs_translation(req.raw):
        # The top-level system prompt (the first message); system messages within the conversation
        # are translated in their places.
        top = req.messages[0].content if req.raw.get("system") and req.messages[0].role == "system" else ""
        body["messages"] = translate.messages([top], req.raw.get("messages") or [])
        if req.raw.get("tools"):
            body["tools"] = translate.tools(req.raw["tools"])
        body.update(translate.tool_choice(req.raw.get("tool_choice")))
    else:
        body["messages"] = [{"role": m.role, "content": m.content,
                             **{k: v for k, v in m.extra.items() if k in _PASSTHROUGH_FIELDS}} for m in req.messages]
    if req.max_tokens is not None:
        # The client's own name for the limit: reasoning models take only max_completion_tokens.
        limit = "max_completion_tokens" if req.wire == "openai" and "max_completion_tokens" in req.raw else "max_tokens"
        body[limit] = req.max_tokens
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.top_p is not None:
        body["top_p"] = req.top_p
    if req.stop:
        body["stop"] = list(req.stop)
    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _arguments(tool_calls: object) -> list[str]:
    """The argument texts (or fragments) of OpenAI tool calls."""
    out = []
    for call in tool_calls if isinstance(tool_calls, list) else ():
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
            out.append(fn["arguments"])
    return out


def _usage(u: dict | None) -> Usage | None:
    if not isinstance(u, dict):
        return None
    return Usage(int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0))


class OpenAIBackend:
    def __init__(self, name: str, base_url: str, api_key: str | None, timeouts: Timeouts = Timeouts(),
                 session: aiohttp.ClientSession | None = None):
        self.name = name
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.embeddings_url = base_url.rstrip("/") + "/embeddings"
        self.headers = {"content-type": "application/json"}
        if api_key:
            self.headers["authorization"] = f"Bearer {api_key}"
        self.session = session  # bound at start-up, inside the event loop
        self.timeouts = timeouts

    async def _call(self, url: str, body: bytes) -> bytes:
        """POST ``body`` and return the 200 answer's bytes; any other outcome is an ``UpstreamError``."""
        try:
            async with self.session.post(url, data=body, headers=upstream_headers(self.headers),
                                         timeout=self.timeouts.for_call(), allow_redirects=False) as r:
                status, raw = r.status, await r.read()
        except TRANSPORT_ERRORS as e:
            raise transport_error(self.name, e) from None
        if status != 200:
            raise status_error(self.name, status, raw)
        return raw

    async def complete(self, req: ChatRequest, model: str) -> ChatResult:
        raw = await self._call(self.url, orjson.dumps(request_body(req, model)))
        try:
            data = orjson.loads(raw)
            choice = data["choices"][0]
            content = choice.get("message", {}).get("content") or ""
            calls = _arguments((choice.get("message") or {}).get("tool_calls"))
            return ChatResult(content=content, finish_reason=choice.get("finish_reason") or "stop",
                              usage=_usage(data.get("usage")) or Usage(), backend=self.name,
                              upstream_model=str(data.get("model") or model), raw=choice, raw_wire="openai",
                              calls_text="\n".join(calls), others=tuple(data["choices"][1:]))
        except Exception:
            raise UpstreamError(f"backend {self.name}: malformed response", status=502) from None

    async def count_tokens(self, req: ChatRequest, model: str) -> tuple[int, str]:
        """An estimate (the format has no counting endpoint): a quarter of the characters of every
        text and tool definition, rounded up, the rule of thumb for English text."""
        chars = sum(len(t) for t in req.texts()) + len(orjson.dumps(req.raw.get("tools") or []))
        return max(1, -(-chars // 4)), "estimate"

    async def embed(self, req: ChatRequest, model: str) -> EmbeddingResult:
        """``POST /embeddings`` with the client's body as sent (dimensions, encoding_format, user, ...)."""
        raw = await self._call(self.embeddings_url, orjson.dumps({**req.raw, "model": model}))
        try:
            data = orjson.loads(raw)
            if not isinstance(data, dict) or not isinstance(data["data"], list):
                raise ValueError
            usage = data.get("usage") or {}
            return EmbeddingResult(raw=data, usage=Usage(int(usage.get("prompt_tokens") or 0), 0), backend=self.name)
        except Exception:
            raise UpstreamError(f"backend {self.name}: malformed embeddings response", status=502) from None

    async def stream(self, req: ChatRequest, model: str) -> AsyncIterator[ChatChunk]:
        """Chunks as they arrive.  Events that arrive together are merged into one chunk,
        so a fast upstream costs one pass through the gateway per network read, not per token."""
        body = orjson.dumps(request_body(req, model))
        finish: str | None = None
        usage: Usage | None = None
        done = False
        try:
            async with self.session.post(self.url, data=body, headers=upstream_headers(self.headers),
                                         timeout=self.timeouts.for_stream(), allow_redirects=False) as r:
                if r.status != 200:
                    raise status_error(self.name, r.status, await r.read())
                async for events in iter_sse_batches(r):
                    text: list[str] = []
                    raw: list[dict] = []  # the batch's choices, forwarded as they came when one held more than text
                    rich = False
                    calls: list[str] = []
                    failure: UpstreamError | None = None
                    for _event, data in events:
                        if data == "[DONE]":
                            done = True
                            break
                        try:
                            obj = orjson.loads(data)
                        except orjson.JSONDecodeError:
                            failure = UpstreamError(f"backend {self.name}: malformed stream", status=502)
                            break
                        if "error" in obj:
                            failure = UpstreamError(f"backend {self.name}: error in stream", status=502)
                            break
                        usage = _usage(obj.get("usage")) or usage
                        for choice in obj.get("choices") or []:
                            fields = choice.get("delta") or {}
                            delta = fields.get("content")
                            if delta:
                                text.append(delta)
                            calls.extend(_arguments(fields.get("tool_calls")))
                            raw.append(choice)
                            first = not choice.get("index")  # the other choices (n > 1) go out as they came
                            rich = rich or not first or choice.get("logprobs") is not None or any(
                                v is not None for k, v in fields.items() if k not in ("role", "content"))
                            if first:
                                finish = choice.get("finish_reason") or finish
                    if rich:  # the batch's choices in order, text included, so nothing is reordered
                        yield ChatChunk(delta="".join(text), raw=tuple(raw), raw_wire="openai",
                                        calls_text="".join(calls))
                    elif text:  # what arrived before a failure is still delivered
                        yield ChatChunk(delta="".join(text))
                    if failure is not None:
                        raise failure
                    if done:
                        break
        except TRANSPORT_ERRORS as e:
            raise transport_error(self.name, e) from None
        if not done and finish is None:
            raise UpstreamError(f"backend {self.name}: stream ended early", status=502)
        yield ChatChunk(finish_reason=finish or "stop", usage=usage)

    async def aclose(self) -> None:
        return None

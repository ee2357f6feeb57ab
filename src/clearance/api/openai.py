"""The OpenAI chat completions wire format: parse requests, render answers and streams.

``parse_request`` validates a JSON body into a neutral ``ChatRequest``;
``render_result`` and ``render_stream`` produce exactly what the official
``openai`` SDK expects, ``usage`` included.  A stream that breaks after it
started ends with an ``error`` event, never a clean ``[DONE]``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson

from clearance.api.errors import ApiError, bad_request
from clearance.types import ChatChunk, ChatRequest, ChatResult, Message, Usage

# Fields Clearance reads itself.  Every other field (seed, response_format, tools, reasoning_effort,
# store, a self-hosted server's own sampling options, ...) is kept in ``ChatRequest.params`` and goes to
# an OpenAI-compatible backend as sent; a backend of the other format translates it or refuses it by
# name (routing/backends/anthropic.py).  Nothing is dropped.
_KNOWN = frozenset({"model", "messages", "stream", "max_tokens", "max_completion_tokens", "temperature", "top_p",
                    "stop", "stream_options", "n"})
_MAX_CHOICES = 128  # the most choices the OpenAI API serves in one request
_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


def _text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict):
                raise bad_request(f"{where}[{i}] must be an object", where)
            if part.get("type") == "text":
                if not isinstance(part.get("text"), str):
                    raise bad_request(f"{where}[{i}].text must be a string", where)
                parts.append(part["text"])
        return "\n".join(parts)
    raise bad_request(f"{where} must be a string or a list of content parts", where)


def _number(body: dict, name: str, lo: float, hi: float) -> float | None:
    v = body.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise bad_request(f"'{name}' must be a number between {lo} and {hi}", name)
    return float(v)


def parse_request(body: Any, request_id: str) -> ChatRequest:
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("'model' is required and must be a string", "model")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise bad_request("'messages' is required and must be a non-empty list", "messages")
    messages = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise bad_request(f"messages[{i}] must be an object", "messages")
        role = m.get("role")
        if not isinstance(role, str) or role not in _ROLES:
            raise bad_request(f"messages[{i}].role must be one of {sorted(_ROLES)}", "messages")
        raw_content = m.get("content")
        content = _text(raw_content, f"messages[{i}].content")
        extra = {k: v for k, v in m.items() if k in ("name", "tool_calls", "tool_call_id")}
        if "tool_calls" in extra:  # arguments of tool calls are part of the conversation the guard screens
            content = "\n".join([content, orjson.dumps(extra["tool_calls"]).decode()]) if content else \
                orjson.dumps(extra["tool_calls"]).decode()
        if not isinstance(raw_content, str) or "tool_calls" in extra:
            # Content parts (image_url, input_audio, ...) and a null content beside tool calls go to an
            # OpenAI-compatible backend as the client sent them; ``content`` is only their text.
            extra["content"] = raw_content
        messages.append(Message("system" if role == "developer" else role, content, extra))
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad_request("'stream' must be a boolean", "stream")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise bad_request("'max_tokens' must be a positive integer", "max_tokens")
    stop = body.get("stop")
    if stop is None:
        stops: tuple[str, ...] = ()
    elif isinstance(stop, str):
        stops = (stop,)
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        stops = tuple(stop)
    else:
        raise bad_request("'stop' must be a string or a list of strings", "stop")
    n = body.get("n")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= _MAX_CHOICES):
        raise bad_request(f"'n' must be an integer between 1 and {_MAX_CHOICES}", "n")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise bad_request("'stream_options' must be an object", "stream_options")
    params = {k: v for k, v in body.items() if k not in _KNOWN}
    if n is not None and n > 1:  # several choices: an OpenAI-compatible backend serves them, the other refuses
        params["n"] = n
    return ChatRequest(request_id=request_id, model=model, messages=tuple(messages), stream=stream,
                       max_tokens=max_tokens, temperature=_number(body, "temperature", 0, 2),
                       top_p=_number(body, "top_p", 0, 1), stop=stops, params=params, wire="openai", raw=body,
                       tools=tool_names(body.get("tools")), has_images=_has_images(raw))


def tool_names(tools: Any) -> tuple[str, ...]:
    """The names of the offered tools (``function.name``, or ``name``/``type`` of other tool kinds)."""
    if tools is None:
        return ()
    if not isinstance(tools, list):
        raise bad_request("'tools' must be a list of tool objects", "tools")
    names = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise bad_request(f"tools[{i}] must be an object", "tools")
        fn = tool.get("function")
        name = fn.get("name") if isinstance(fn, dict) else tool.get("name") or tool.get("type")
        if not isinstance(name, str) or not name:
            raise bad_request(f"tools[{i}] needs a name ('function.name')", "tools")
        names.append(name)
    return tuple(sorted(set(names)))


def _has_images(messages: list[Any]) -> bool:
    return any(isinstance(part, dict) and part.get("type") in ("image_url", "input_image")
               for m in messages if isinstance(m.get("content"), list) for part in m["content"])


def _usage(u: Usage) -> dict[str, int]:
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.total_tokens}


def completion_id(request_id: str) -> str:
    return "chatcmpl-" + request_id.removeprefix("req_")


def _choice(raw: dict[str, Any], index: int) -> dict[str, Any]:
    """An OpenAI upstream's choice as it came (tool calls, logprobs), with its index."""
    message = raw.get("message")
    message = {**message, "role": "assistant"} if isinstance(message, dict) else {"role": "assistant", "content": ""}
    return {"index": raw.get("index", index), "message": message,
            "finish_reason": raw.get("finish_reason") or "stop", "logprobs": raw.get("logprobs")}


def render_result(result: ChatResult, req: ChatRequest) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": result.content}
    logprobs = None
    others = [_choice(raw, i) for i, raw in enumerate(result.others, start=1)]  # n > 1
    if result.raw_wire == "openai" and result.raw is not None:  # the upstream's message as it came
        raw_message = result.raw.get("message")
        if isinstance(raw_message, dict):
            message = {**raw_message, "role": "assistant"}
        logprobs = result.raw.get("logprobs")
    elif result.raw_wire == "anthropic" and result.raw is not None:  # an Anthropic upstream's tool_use blocks
        calls = [{"id": b.get("id"), "type": "function",
                  "function": {"name": b.get("name"), "arguments": orjson.dumps(b.get("input") or {}).decode()}}
                 for b in result.raw.get("content") or () if isinstance(b, dict) and b.get("type") == "tool_use"]
        if calls:
            message = {"role": "assistant", "content": result.content or None, "tool_calls": calls}
    return {
        "id": completion_id(req.request_id),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": req.model,
        "choices": [{"index": 0, "message": message, "finish_reason": result.finish_reason, "logprobs": logprobs},
                    *others],
        "usage": _usage(result.usage),
    }


def anthropic_deltas(c: ChatChunk, tool_index: dict[int, int]) -> Iterator[dict[str, Any]]:
    """An Anthropic upstream's streamed blocks as chat-completions deltas: text, and tool_use as tool_calls.

    ``tool_index`` maps the stream's tool_use block indexes to tool-call indexes (kept by the caller).
    """
    for event in c.raw:
        kind, index = event.get("type"), event.get("index")
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                tool_index[index] = len(tool_index)
                yield {"tool_calls": [{"index": tool_index[index], "id": block.get("id"), "type": "function",
                                       "function": {"name": block.get("name"), "arguments": ""}}]}
            elif block.get("type") == "text" and block.get("text"):
                yield {"content": block["text"]}
        elif kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                yield {"content": delta["text"]}
            elif delta.get("type") == "input_json_delta" and index in tool_index and delta.get("partial_json"):
                yield {"tool_calls": [{"index": tool_index[index], "function": {"arguments": delta["partial_json"]}}]}


def _translated_frames(c: ChatChunk, chunk, tool_index: dict[int, int]) -> bytes:
    """An Anthropic upstream's streamed blocks as OpenAI chunks."""
    return b"".join(chunk(delta, None) for delta in anthropic_deltas(c, tool_index))


def _raw_frames(c: ChatChunk, chunk) -> bytes:
    """An OpenAI upstream's choices (tool-call deltas, logprobs) forwarded as they came.

    The first choice's finish is held back for the closing events; with n > 1 the other choices' finish
    reasons go out as they came (the stream can still end in an error event after them).
    """
    out = b""
    for choice in c.raw:
        delta = choice.get("delta")
        delta = {k: v for k, v in delta.items() if k != "role"} if isinstance(delta, dict) else {}
        logprobs = choice.get("logprobs")
        index = choice.get("index") or 0
        finish = choice.get("finish_reason") if index else None
        if delta or logprobs is not None or finish:
            out += chunk(delta, finish, logprobs, index)
    return out


def _event(obj: dict) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


async def render_stream(chunks: AsyncIterator[ChatChunk], req: ChatRequest, include_usage: bool) -> AsyncIterator[bytes]:
    """SSE for the openai SDK, ending with an error event if ``chunks`` breaks."""
    cid, created = completion_id(req.request_id), int(time.time())
    base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": req.model}

    def chunk(delta: dict, finish: str | None, logprobs: Any = None, index: int = 0) -> bytes:
        return _event({**base, "choices": [{"index": index, "delta": delta, "finish_reason": finish,
                                            "logprobs": logprobs}]})

    usage: Usage | None = None
    finish: str | None = None
    tool_index: dict[int, int] = {}  # an Anthropic upstream's tool_use block index -> tool-call index
    # The opening role event goes out together with the first chunk's content (the pipeline has that
    # chunk in hand when the stream starts, so nothing waits), and the closing events go out together:
    # fewer socket writes, the same events.
    opening = chunk({"role": "assistant", "content": ""}, None)
    try:
        async for c in chunks:
            if c.raw_wire == "openai" and c.raw:
                out = opening + _raw_frames(c, chunk)
            elif c.raw_wire == "anthropic" and c.raw:
                out = opening + _translated_frames(c, chunk, tool_index)
            else:
                out = opening + chunk({"content": c.delta}, None) if c.delta else opening
            opening = b""
            if out:
                yield out
            if c.finish_reason:
                finish = c.finish_reason
            if c.usage is not None:
                usage = c.usage
        tail = opening + chunk({}, finish or "stop")
        if include_usage:
            tail += _event({**base, "choices": [], "usage": _usage(usage or Usage())})
        yield tail + b"data: [DONE]\n\n"
    except Exception as e:  # the stream broke after it started: say so, never finish cleanly
        stopped = getattr(e, "error", None)
        if isinstance(stopped, ApiError):  # stopped by Clearance (response screening)
            yield opening + _event(stopped.openai_body(req.request_id))
            return
        # Generic: the detail (which backend, what it said) is in the log and the audit entry.
        yield opening + _event({"error": {"message": f"the upstream stream failed (request {req.request_id})",
                                          "type": "upstream_error",
                                          "code": "stream_interrupted", "request_id": req.request_id}})
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


def sse_error(err: ApiError, request_id: str) -> bytes:
    return _event(err.openai_body(request_id))


def render_models(names: list[str], created: int = 0) -> dict[str, Any]:
    return {"object": "list",
            "data": [{"id": n, "object": "model", "created": created, "owned_by": "clearance"} for n in names]}

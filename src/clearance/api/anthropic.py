"""The Anthropic Messages wire format, inbound: ``POST /v1/messages``.

``parse_request`` turns a client's JSON body (as sent by the official
``anthropic`` SDK) into a neutral ``ChatRequest``, rejecting anything
malformed with a 400 that names the offending parameter.  ``render_message``
and ``render_stream`` turn a backend's answer back into the Messages API
response object or its server-sent event stream.

Text that reaches the model is always visible in ``Message.content``: text
blocks, tool calls and tool results are all flattened to text so the guard
screens them.  The raw blocks of a turn that held more than text are kept in
``Message.extra["anthropic_blocks"]``, and the whole body in ``ChatRequest.raw``:
an Anthropic backend forwards that body as sent (tools, images, thinking,
cache_control); an OpenAI-compatible backend refuses what it cannot translate.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from clearance.api.errors import ApiError, bad_request
from clearance.types import ChatChunk, ChatRequest, ChatResult, Message

# Fields a client may send that Clearance reads.
_KNOWN_FIELDS = frozenset({
    "model", "max_tokens", "messages", "system", "stop_sequences", "temperature",
    "top_p", "top_k", "stream", "metadata", "thinking", "tools", "tool_choice",
})
# Fields that go to an Anthropic upstream with the rest of the body, type-checked here; an
# OpenAI-compatible backend translates what it can (output_config's effort and format, thinking
# edits of context_management) and refuses the rest by name (routing/backends/openai.py).
_FORWARDED_OBJECTS = ("context_management", "output_config")
_FORWARDED_STRINGS = ("inference_geo",)
# Hints about the provider's own service that do not change the answer: type-checked, then not
# forwarded (cache_control is the exception: an Anthropic upstream gets it with the rest of the body).
_IGNORED_STRINGS = ("service_tier", "speed", "user_profile_id", "workspace_id")
_IGNORED_OBJECTS = ("cache_control", "diagnostics")
# Fields the API defines that change what the model does and that Clearance cannot honour
# on every backend; rejected rather than silently dropped.
_UNSUPPORTED_FIELDS = frozenset({"container"})
# Content blocks that carry no text for the guard and are forwarded as they are.
_OPAQUE_BLOCKS = frozenset({"image", "document"})
# Request headers of this format forwarded to an upstream that speaks it.
FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")

# finish_reason (OpenAI vocabulary, as backends report it) -> Anthropic stop_reason.
_STOP_REASONS = {
    "stop": "end_turn",
    "end_turn": "end_turn",
    "length": "max_tokens",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool_calls": "tool_use",
    "tool_use": "tool_use",
    "content_filter": "refusal",
    "refusal": "refusal",
}

BLOCKS_KEY = "anthropic_blocks"


# --------------------------------------------------------------------------- parsing

def parse_request(body: object, request_id: str, headers: dict[str, str] | None = None) -> ChatRequest:
    """Validate a Messages API request body and translate it to a ``ChatRequest``.

    ``headers`` are the client's ``anthropic-version`` and ``anthropic-beta`` headers, if sent.

    Raises ``ApiError`` (400) naming the parameter on any malformed input.
    """
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    for key in body:
        if key in _UNSUPPORTED_FIELDS:
            if body[key] is None:
                continue
            raise bad_request(f"{key}: not supported by this gateway.", param=key)
        if key in _IGNORED_STRINGS or key in _FORWARDED_STRINGS:
            if body[key] is not None and not isinstance(body[key], str):
                raise bad_request(f"{key}: must be a string.", param=key)
        elif key in _IGNORED_OBJECTS or key in _FORWARDED_OBJECTS:
            if body[key] is not None and not isinstance(body[key], dict):
                raise bad_request(f"{key}: must be an object.", param=key)
        elif key not in _KNOWN_FIELDS:
            raise bad_request(f"{key}: Extra inputs are not permitted.", param=key)

    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise bad_request("model: a non-empty string is required.", param="model")

    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise bad_request("max_tokens: field required.", param="max_tokens")
    if not _is_int(max_tokens) or max_tokens < 1:
        raise bad_request("max_tokens: must be a positive integer.", param="max_tokens")

    messages: list[Message] = []
    system = _parse_system(body.get("system"))
    if system:
        messages.append(Message(role="system", content=system))
    messages.extend(_parse_messages(body.get("messages")))

    temperature = _optional_number(body, "temperature", 0.0, 1.0)
    top_p = _optional_number(body, "top_p", 0.0, 1.0)

    params: dict[str, Any] = {}
    top_k = body.get("top_k")
    if top_k is not None:
        if not _is_int(top_k) or top_k < 0:
            raise bad_request("top_k: must be a non-negative integer.", param="top_k")
        params["top_k"] = top_k

    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise bad_request("metadata: must be an object.", param="metadata")
        user_id = metadata.get("user_id")
        if user_id is not None and not isinstance(user_id, str):
            raise bad_request("metadata.user_id: must be a string.", param="metadata.user_id")
    thinking = body.get("thinking")
    if thinking is not None:
        if not isinstance(thinking, dict) or not isinstance(thinking.get("type"), str):
            raise bad_request("thinking: must be an object with a 'type'.", param="thinking")
    tools = body.get("tools")
    if tools is not None and (not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)):
        raise bad_request("tools: must be a list of objects.", param="tools")
    tool_choice = body.get("tool_choice")
    if tool_choice is not None and not isinstance(tool_choice, dict):
        raise bad_request("tool_choice: must be an object.", param="tool_choice")

    stop = body.get("stop_sequences")
    if stop is None:
        stop = []
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise bad_request("stop_sequences: must be a list of non-empty strings.", param="stop_sequences")

    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise bad_request("stream: must be a boolean.", param="stream")

    return ChatRequest(
        request_id=request_id,
        model=model,
        messages=tuple(messages),
        stream=stream,
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        stop=tuple(stop),
        params=params,
        wire="anthropic",
        raw=body,
        headers=dict(headers or {}),
        tools=_tool_names(tools),
        has_images=_has_images(body["messages"]),
    )


def _tool_names(tools: list[dict[str, Any]] | None) -> tuple[str, ...]:
    names = []
    for i, tool in enumerate(tools or ()):
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise bad_request(f"tools.{i}.name: a non-empty string is required.", param=f"tools.{i}.name")
        names.append(name)
    return tuple(sorted(set(names)))


def _has_images(messages: list[dict[str, Any]]) -> bool:
    """Whether any turn, or any tool result inside one, holds an image block."""
    for m in messages:
        for block in m["content"] if isinstance(m["content"], list) else ():
            if block["type"] == "image":
                return True
            inner = block.get("content") if block["type"] == "tool_result" else None
            if isinstance(inner, list) and any(isinstance(b, dict) and b.get("type") == "image" for b in inner):
                return True
    return False


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _optional_number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise bad_request(f"{name}: must be a number between {low:g} and {high:g}.", param=name)
    return float(value)


def _parse_system(system: object) -> str:
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        parts = []
        for i, block in enumerate(system):
            where = f"system.{i}"
            if not isinstance(block, dict) or block.get("type") != "text":
                raise bad_request(f"{where}: system blocks must be text blocks.", param=where)
            parts.append(_text_of(block, where))
        return "\n".join(parts)
    raise bad_request("system: must be a string or a list of text blocks.", param="system")


def _parse_messages(raw: object) -> list[Message]:
    if not isinstance(raw, list) or not raw:
        raise bad_request("messages: a non-empty list is required.", param="messages")
    out = []
    for i, item in enumerate(raw):
        where = f"messages.{i}"
        if not isinstance(item, dict):
            raise bad_request(f"{where}: each message must be an object.", param=where)
        role = item.get("role")
        # "system" is a system message in the middle of a conversation (a beta of the format).
        if role not in ("user", "assistant", "system"):
            raise bad_request(f"{where}.role: must be 'user', 'assistant' or 'system'.", param=f"{where}.role")
        content = item.get("content")
        if isinstance(content, str):
            out.append(Message(role=role, content=content))
        elif isinstance(content, list) and content:
            text, rich = _flatten_blocks(content, f"{where}.content")
            extra = {BLOCKS_KEY: content} if rich else {}
            out.append(Message(role=role, content=text, extra=extra))
        else:
            raise bad_request(f"{where}.content: must be a string or a non-empty list of content blocks.",
                              param=f"{where}.content")
    return out


def _flatten_blocks(blocks: list[Any], where: str) -> tuple[str, bool]:
    """The blocks' text, and whether any block was more than plain text."""
    parts: list[str] = []
    rich = False
    for i, block in enumerate(blocks):
        here = f"{where}.{i}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise bad_request(f"{here}: each content block must be an object with a 'type'.", param=here)
        kind = block["type"]
        if kind == "text":
            parts.append(_text_of(block, here))
        elif kind == "tool_use":
            rich = True
            name = block.get("name")
            if not isinstance(name, str) or not name:
                raise bad_request(f"{here}.name: a non-empty string is required.", param=f"{here}.name")
            tool_input = block.get("input", {})
            if not isinstance(tool_input, dict):
                raise bad_request(f"{here}.input: must be an object.", param=f"{here}.input")
            parts.append(f"[tool_use {name}] {json.dumps(tool_input, ensure_ascii=False, sort_keys=True)}")
        elif kind == "tool_result":
            rich = True
            parts.append(_tool_result_text(block, here))
        elif kind == "document":
            rich = True
            parts.append(_document_text(block, here))
        elif kind in _OPAQUE_BLOCKS:
            rich = True
        elif kind in ("thinking", "redacted_thinking"):
            # The model's own earlier reasoning: nothing a user wrote, nothing to screen (an Anthropic
            # upstream gets it back with the body; an OpenAI-compatible one refuses it).
            rich = True
        else:
            raise bad_request(f"{here}.type: content blocks of type {kind!r} are not supported by this gateway.",
                              param=f"{here}.type")
    return "\n".join(parts), rich


def _tool_result_text(block: dict[str, Any], where: str) -> str:
    content = block.get("content", "")
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        texts = []
        for i, inner in enumerate(content):
            here = f"{where}.content.{i}"
            if isinstance(inner, dict) and inner.get("type") == "document":
                texts.append(_document_text(inner, here))
                continue
            if isinstance(inner, dict) and inner.get("type") in _OPAQUE_BLOCKS:
                continue
            if not isinstance(inner, dict) or inner.get("type") != "text":
                raise bad_request(f"{here}: tool results may hold only text, image and document blocks.",
                                  param=here)
            texts.append(_text_of(inner, here))
        text = "\n".join(texts)
    else:
        raise bad_request(f"{where}.content: must be a string or a list of text blocks.", param=f"{where}.content")
    label = "[tool_result error]" if block.get("is_error") is True else "[tool_result]"
    return f"{label} {text}"


def _document_text(block: dict[str, Any], where: str) -> str:
    """What a document block says in text, screened like a turn: its title and context, and a plain-text
    source's data or a content source's text blocks (a PDF's bytes or a file id are opaque, like an image)."""
    texts = [v for v in (block.get("title"), block.get("context")) if isinstance(v, str)]
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "text":
        if not isinstance(source.get("data"), str):
            raise bad_request(f"{where}.source.data: a string is required.", param=f"{where}.source.data")
        texts.append(source["data"])
    elif isinstance(source, dict) and source.get("type") == "content":
        content = source.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(_text_of(b, f"{where}.source.content.{i}") for i, b in enumerate(content)
                         if isinstance(b, dict) and b.get("type") == "text")
        else:
            raise bad_request(f"{where}.source.content: a string or a list of blocks is required.",
                              param=f"{where}.source.content")
    return "\n".join(texts)


def _text_of(block: dict[str, Any], where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise bad_request(f"{where}.text: a string is required.", param=f"{where}.text")
    return text


# --------------------------------------------------------------------------- rendering

def stop_reason(finish_reason: str | None) -> str:
    """The Anthropic ``stop_reason`` for a neutral finish reason."""
    return _STOP_REASONS.get(finish_reason or "stop", "end_turn")


def render_message(result: ChatResult, req: ChatRequest, message_id: str) -> dict[str, Any]:
    """The Messages API response object for a complete answer."""
    message = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": req.model,
        "content": [{"type": "text", "text": result.content}],
        "stop_reason": stop_reason(result.finish_reason),
        "stop_sequence": None,
        "usage": {"input_tokens": result.usage.prompt_tokens, "output_tokens": result.usage.completion_tokens},
    }
    if result.raw_wire == "openai" and result.raw is not None:  # an OpenAI upstream's tool calls, translated
        blocks = [_tool_use_block(call) for call in (result.raw.get("message") or {}).get("tool_calls") or ()]
        if blocks:
            message["content"] = ([{"type": "text", "text": result.content}] if result.content else []) + blocks
    raw = result.raw if result.raw_wire == "anthropic" else None
    if raw is not None:  # an upstream of this format: its blocks (tool_use, thinking, ...) as they came
        if isinstance(raw.get("content"), list):
            message["content"] = raw["content"]
        for key in ("stop_reason", "stop_sequence", "usage"):
            if key in raw:
                message[key] = raw[key]
    return message


def _tool_use_block(call: dict[str, Any]) -> dict[str, Any]:
    """The ``tool_use`` block for an OpenAI tool call."""
    fn = call.get("function") or {}
    try:
        arguments = json.loads(fn.get("arguments") or "{}")
    except ValueError:
        arguments = {"arguments": fn.get("arguments")}  # not JSON: kept, never dropped
    return {"type": "tool_use", "id": call.get("id"), "name": fn.get("name"),
            "input": arguments if isinstance(arguments, dict) else {"arguments": arguments}}


def _event(name: str, data: dict[str, Any]) -> bytes:
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {name}\ndata: {payload}\n\n".encode()


def _stop_block(index: int) -> bytes:
    return _event("content_block_stop", {"type": "content_block_stop", "index": index})


def sse_error(err: ApiError, request_id: str) -> bytes:
    """One ``event: error`` frame carrying the error in the Anthropic shape."""
    return _event("error", err.anthropic_body(request_id))


async def render_stream(chunks: AsyncIterator[ChatChunk], req: ChatRequest, message_id: str,
                        prompt_tokens_hint: int = 0) -> AsyncIterator[bytes]:
    """Server-sent events for a streamed answer, as the official SDK expects them.

    Nothing is yielded until the first chunk with text (or a finish) arrives,
    so an upstream failing before its first token raises out of the first
    ``__anext__`` and the caller may fall back.  A failure after output began
    ends the stream with an ``error`` event, never a clean ``message_stop``.
    """
    iterator = aiter(chunks)
    try:
        pending: list[ChatChunk] = []
        finished = False
        while True:
            try:
                chunk = await anext(iterator)
            except StopAsyncIteration:
                finished = True
                break
            pending.append(chunk)
            if chunk.delta or chunk.raw or chunk.finish_reason is not None:
                break
        # An upstream of this format: its content-block events go to the client as they came.
        passthrough = any(c.raw_wire == "anthropic" for c in pending)

        input_tokens = prompt_tokens_hint
        # The opening events and the frames of the chunks already in hand go out as one piece
        # (one socket write), and so do the closing events.
        opening = _event("message_start", {"type": "message_start", "message": {
            "id": message_id, "type": "message", "role": "assistant", "model": req.model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 0},
        }})
        if not passthrough:
            opening += _event("content_block_start", {"type": "content_block_start", "index": 0,
                                                      "content_block": {"type": "text", "text": ""}})
        opening += _event("ping", {"type": "ping"})

        finish: str | None = None
        output_tokens = 0
        upstream_delta: dict[str, Any] = {}  # the upstream's own message_delta, sent at the close
        block = 0  # the open content block's index (text block 0 is opened with the message)
        tool_blocks: dict[int, int] = {}  # an OpenAI upstream's tool-call index -> its tool_use block

        def text_frames(text: str) -> bytes:
            nonlocal block
            frames = b""
            if tool_blocks and block == max(tool_blocks.values()):  # text after a tool call: a block of its own
                frames += _stop_block(block)
                block += 1
                frames += _event("content_block_start", {"type": "content_block_start", "index": block,
                                                         "content_block": {"type": "text", "text": ""}})
            return frames + _event("content_block_delta", {"type": "content_block_delta", "index": block,
                                                           "delta": {"type": "text_delta", "text": text}})

        def translated(choices: tuple[dict[str, Any], ...]) -> bytes:
            """An OpenAI upstream's streamed choices as text deltas and tool_use blocks, in order."""
            nonlocal block
            frames = b""
            for choice in choices:
                delta = choice.get("delta") or {}
                if isinstance(delta.get("content"), str) and delta["content"]:
                    frames += text_frames(delta["content"])
                for call in delta.get("tool_calls") or ():
                    fn = call.get("function") or {}
                    if call.get("index", 0) not in tool_blocks:
                        frames += _stop_block(block)
                        block += 1
                        tool_blocks[call.get("index", 0)] = block
                        frames += _event("content_block_start", {"type": "content_block_start", "index": block,
                                                                 "content_block": {"type": "tool_use", "id": call.get("id"),
                                                                                   "name": fn.get("name"), "input": {}}})
                    if fn.get("arguments"):
                        frames += _event("content_block_delta", {
                            "type": "content_block_delta", "index": tool_blocks[call.get("index", 0)],
                            "delta": {"type": "input_json_delta", "partial_json": fn["arguments"]}})
            return frames

        def take(chunk: ChatChunk) -> bytes | None:
            nonlocal finish, output_tokens, input_tokens, upstream_delta
            if chunk.finish_reason is not None:
                finish = chunk.finish_reason
            if chunk.usage is not None:
                output_tokens = chunk.usage.completion_tokens
                input_tokens = chunk.usage.prompt_tokens or input_tokens
            if passthrough:
                frames = b""
                for event in chunk.raw if chunk.raw_wire == "anthropic" else ():
                    if event.get("type") == "message_delta":
                        upstream_delta = event
                    else:
                        frames += _event(str(event.get("type")), event)
                return frames or None
            if chunk.raw_wire == "openai" and chunk.raw:
                return translated(chunk.raw) or None
            if not chunk.delta:
                return None
            return text_frames(chunk.delta)

        for chunk in pending:
            if (frame := take(chunk)) is not None:
                opening += frame
        yield opening
        if not finished:
            try:
                async for chunk in iterator:
                    if (frame := take(chunk)) is not None:
                        yield frame
            except Exception as exc:  # noqa: BLE001 - any failure after output began ends the stream with an error
                stopped = getattr(exc, "error", None)
                if isinstance(stopped, ApiError):  # stopped by Clearance (response screening)
                    yield sse_error(stopped, req.request_id)
                    return
                # Generic: the detail (which backend, what it said) is in the log and the audit entry.
                yield sse_error(ApiError(502, f"Upstream stream interrupted (request {req.request_id})",
                                         type="api_error"),
                                req.request_id)
                return

        delta = {"stop_reason": stop_reason(finish), "stop_sequence": None}
        usage = {"input_tokens": input_tokens, "output_tokens": output_tokens}
        if isinstance(upstream_delta.get("delta"), dict):
            delta = {**delta, **upstream_delta["delta"]}
        if isinstance(upstream_delta.get("usage"), dict):
            usage = {**usage, **upstream_delta["usage"]}
        closing = b"" if passthrough else _stop_block(block)
        yield (closing + _event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
               + _event("message_stop", {"type": "message_stop"}))
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()


def render_model(name: str) -> dict[str, Any]:
    """A model as the Models API describes it."""
    return {"type": "model", "id": name, "display_name": name, "created_at": "1970-01-01T00:00:00Z"}


def render_models(names: list[str]) -> dict[str, Any]:
    return {"data": [render_model(n) for n in names], "has_more": False,
            "first_id": names[0] if names else None, "last_id": names[-1] if names else None}

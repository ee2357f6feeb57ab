"""The Responses API event stream for a streamed answer.

``render_stream`` turns the pipeline's ``ChatChunk`` values (an OpenAI-compatible
upstream's chat deltas, an Anthropic upstream's content-block events, or plain
text) into the events the ``openai`` SDK and the Agents SDK read:
``response.created``, ``response.in_progress``, then per output item
``response.output_item.added``, its content parts (``response.content_part.added``,
``response.output_text.delta`` / ``.done``, ``response.content_part.done``) or its
arguments (``response.function_call_arguments.delta`` / ``.done``) and
``response.output_item.done`` (a model's reasoning, from an upstream that sends it, is a
``reasoning`` item with ``response.reasoning_text.delta`` / ``.done``), and finally ``response.completed`` (or
``response.incomplete``) with usage.  Every event carries a ``sequence_number``.
A stream that breaks after it started ends with an ``error`` event and
``response.failed``, never a clean completion.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson

from clearance.api.errors import ApiError
from clearance.api.openai import anthropic_deltas
from clearance.api.responses import Echo, item_id, response, status_of, text_part
from clearance.types import ChatChunk, ChatRequest, Usage


def _deltas(c: ChatChunk, tool_index: dict[int, int]) -> Iterator[tuple[dict[str, Any], list | None]]:
    """The chunk's chat-completions deltas, each with its logprobs (``None`` when it has none)."""
    if c.raw_wire == "openai" and c.raw:
        for choice in c.raw:
            logprobs = choice.get("logprobs")
            yield choice.get("delta") or {}, logprobs.get("content") if isinstance(logprobs, dict) else None
    elif c.raw_wire == "anthropic" and c.raw:
        for delta in anthropic_deltas(c, tool_index):
            yield delta, None
    elif c.delta:
        yield {"content": c.delta}, None


class _Events:
    """The output items of one response as they are streamed, and the events that tell them."""

    def __init__(self, req: ChatRequest, echo: Echo) -> None:
        self.req, self.echo = req, echo
        self.seq = 0
        self.output: list[dict[str, Any]] = []
        self.item: dict[str, Any] | None = None  # the open message or reasoning item
        self.part: dict[str, Any] | None = None  # its open content part
        self.logprobs: list[dict[str, Any]] = []  # of the open output_text part
        self.calls: dict[int, dict[str, Any]] = {}  # chat tool-call index -> its function_call item
        self.call: int | None = None  # the index of the open function_call item

    def event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    def _add(self, item: dict[str, Any]) -> bytes:
        self.output.append(item)
        return self.event("response.output_item.added", output_index=len(self.output) - 1, item=item)

    def _where(self, item: dict[str, Any]) -> dict[str, Any]:
        return {"item_id": item["id"], "output_index": self.output.index(item)}

    # -- message and reasoning items, and their content parts

    def _part(self, kind: str) -> bytes:
        """Make sure an item is open with an open part of ``kind``: output_text or refusal in a message,
        reasoning_text in a reasoning item."""
        out = b""
        item_type = "reasoning" if kind == "reasoning_text" else "message"
        if self.item is not None and self.item["type"] != item_type:
            out += self._close_item()
        if self.item is None:
            out += self._close_call()
            if item_type == "message":
                self.item = {"type": "message", "id": item_id("msg", self.req.request_id, len(self.output)),
                             "status": "in_progress", "role": "assistant", "content": []}
            else:
                self.item = {"type": "reasoning", "id": item_id("rs", self.req.request_id, len(self.output)),
                             "status": "in_progress", "summary": [], "content": []}
            out += self._add(self.item)
        if self.part is not None and self.part["type"] != kind:
            out += self._close_part()
        if self.part is None:
            self.part = text_part("", None) if kind == "output_text" else \
                {"type": "refusal", "refusal": ""} if kind == "refusal" else {"type": kind, "text": ""}
            self.logprobs = []
            out += self.event("response.content_part.added", **self._where(self.item),
                              content_index=len(self.item["content"]), part=self.part)
        return out

    def _delta(self, kind: str, event: str, delta: str, **fields: Any) -> bytes:
        out = self._part(kind)
        self.part["refusal" if kind == "refusal" else "text"] += delta
        return out + self.event(event, **self._where(self.item), content_index=len(self.item["content"]),
                                delta=delta, **fields)

    def text(self, delta: str, logprobs: list | None) -> bytes:
        shown = logprobs if self.echo.logprobs and logprobs else []
        out = self._delta("output_text", "response.output_text.delta", delta,
                          logprobs=[{k: v for k, v in lp.items() if k != "bytes"} for lp in shown])
        self.logprobs.extend(shown)
        return out

    def _close_part(self) -> bytes:
        part, self.part = self.part, None
        if part is None:
            return b""
        where = {**self._where(self.item), "content_index": len(self.item["content"])}
        if part["type"] == "output_text":
            if self.echo.logprobs:
                part["logprobs"] = self.logprobs
            out = self.event("response.output_text.done", **where, text=part["text"],
                             logprobs=[{k: v for k, v in lp.items() if k != "bytes"} for lp in self.logprobs])
        elif part["type"] == "refusal":
            out = self.event("response.refusal.done", **where, refusal=part["refusal"])
        else:
            out = self.event("response.reasoning_text.done", **where, text=part["text"])
        self.item["content"].append(part)
        return out + self.event("response.content_part.done", **where, part=part)

    def _close_item(self) -> bytes:
        if self.item is None:
            return b""
        out = self._close_part()
        item, self.item = self.item, None
        item["status"] = "completed"
        return out + self.event("response.output_item.done", output_index=self.output.index(item), item=item)

    # -- function_call items

    def tool_call(self, call: dict[str, Any]) -> bytes:
        index = call.get("index", 0)
        fn = call.get("function") or {}
        out = b""
        if index not in self.calls:
            out += self._close_item() + self._close_call()
            item = {"type": "function_call", "id": item_id("fc", self.req.request_id, len(self.output)),
                    "call_id": call.get("id") or "", "name": fn.get("name") or "", "arguments": "",
                    "status": "in_progress"}
            self.calls[index], self.call = item, index
            out += self._add(item)
        elif index != self.call:  # the upstream went back to a call already told as done
            raise ValueError(f"tool call {index} continued after the next one began")
        elif fn.get("name"):
            self.calls[index]["name"] += fn["name"]
        item = self.calls[index]
        if fn.get("arguments"):
            item["arguments"] += fn["arguments"]
            out += self.event("response.function_call_arguments.delta", **self._where(item), delta=fn["arguments"])
        return out

    def _close_call(self) -> bytes:
        if self.call is None:
            return b""
        item, self.call = self.calls[self.call], None
        item["status"] = "completed"
        return (self.event("response.function_call_arguments.done", **self._where(item), name=item["name"],
                           arguments=item["arguments"])
                + self.event("response.output_item.done", output_index=self.output.index(item), item=item))

    # -- the response

    def chunk(self, c: ChatChunk, tool_index: dict[int, int]) -> bytes:
        out = b""
        for delta, logprobs in _deltas(c, tool_index):
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:  # vLLM, Ollama and others stream reasoning so
                out += self._delta("reasoning_text", "response.reasoning_text.delta", reasoning)
            if delta.get("content"):
                out += self.text(delta["content"], logprobs)
            if delta.get("refusal"):
                out += self._delta("refusal", "response.refusal.delta", delta["refusal"])
            for call in delta.get("tool_calls") or ():
                out += self.tool_call(call)
        return out

    def opening(self) -> bytes:
        snapshot = response(self.echo, self.req.request_id, self.req.model, status="in_progress", output=[])
        return (self.event("response.created", response=snapshot)
                + self.event("response.in_progress", response=snapshot))

    def finish(self, finish_reason: str | None, usage: Usage | None) -> bytes:
        out = self._close_item() + self._close_call()
        status, incomplete = status_of(finish_reason)
        final = response(self.echo, self.req.request_id, self.req.model, status=status, output=self.output,
                         u=usage or Usage(), incomplete=incomplete)
        return out + self.event("response.completed" if status == "completed" else "response.incomplete",
                                response=final)

    def failure(self, code: str, message: str) -> bytes:
        failed = response(self.echo, self.req.request_id, self.req.model, status="failed", output=self.output,
                          error={"code": code, "message": message})
        return (self.event("error", code=code, message=message, param=None, request_id=self.req.request_id)
                + self.event("response.failed", response=failed))


async def render_stream(chunks: AsyncIterator[ChatChunk], req: ChatRequest, echo: Echo) -> AsyncIterator[bytes]:
    """Responses API events for a streamed answer, ending with an error if ``chunks`` breaks."""
    events = _Events(req, echo)
    tool_index: dict[int, int] = {}  # an Anthropic upstream's tool_use block index -> tool-call index
    usage: Usage | None = None
    finish: str | None = None
    # The opening events go out with the first chunk's (the pipeline has it in hand already).
    opening = events.opening()
    try:
        async for c in chunks:
            out = opening + events.chunk(c, tool_index)
            opening = b""
            if out:
                yield out
            finish = c.finish_reason or finish
            usage = c.usage if c.usage is not None else usage
        yield opening + events.finish(finish, usage)
    except Exception as e:  # the stream broke after it started: say so, never complete cleanly
        stopped = getattr(e, "error", None)
        if isinstance(stopped, ApiError):  # stopped by Clearance (response screening)
            yield opening + events.failure(stopped.code, stopped.message)
            return
        error = getattr(e, "message", None) or str(e) or type(e).__name__
        yield opening + events.failure("stream_interrupted", f"upstream stream failed: {error}")
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()

"""Answers of an upstream of the client's own format are rendered as they came: tool calls, logprobs, blocks."""

from __future__ import annotations

import asyncio
import json

from clearance.api import anthropic as anthropic_wire
from clearance.api import openai as openai_wire
from clearance.types import ChatChunk, ChatResult, Usage


def _collect(gen) -> bytes:
    async def run():
        return b"".join([b async for b in gen])
    return asyncio.run(run())


def _chunks(*items):
    async def gen():
        for c in items:
            yield c
    return gen()


def _openai_req(**kw):
    return openai_wire.parse_request({"model": "m", "messages": [{"role": "user", "content": "x"}], **kw}, "req_1")


def test_openai_result_keeps_tool_calls_and_logprobs():
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    raw = {"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [call]},
           "logprobs": {"content": []}, "finish_reason": "tool_calls"}
    out = openai_wire.render_result(ChatResult("", "tool_calls", raw=raw, raw_wire="openai"), _openai_req())
    choice = out["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": None, "tool_calls": [call]}
    assert choice["logprobs"] == {"content": []} and choice["finish_reason"] == "tool_calls"
    # An answer from an Anthropic upstream is text only.
    out = openai_wire.render_result(ChatResult("hi", raw={"content": []}, raw_wire="anthropic"), _openai_req())
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "hi"}


def test_openai_stream_forwards_tool_call_deltas_in_order():
    first = {"index": 0, "delta": {"role": "assistant", "content": None, "tool_calls": [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a"'}}]}}
    second = {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ': 1}'}}]}}
    raw = _collect(openai_wire.render_stream(_chunks(
        ChatChunk(raw=(first,), raw_wire="openai"), ChatChunk(raw=(second,), raw_wire="openai"),
        ChatChunk(finish_reason="tool_calls", usage=Usage(1, 2))), _openai_req(stream=True), False))
    events = [json.loads(e[6:]) for e in raw.decode().split("\n\n") if e.startswith("data: {")]
    deltas = [e["choices"][0]["delta"] for e in events]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert deltas[1] == {"content": None, "tool_calls": first["delta"]["tool_calls"]}
    assert deltas[2] == second["delta"]
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls"


def _anthropic_req(**kw):
    return anthropic_wire.parse_request({"model": "m", "max_tokens": 5,
                                         "messages": [{"role": "user", "content": "x"}], **kw}, "req_1")


def test_anthropic_message_keeps_the_upstream_blocks():
    raw = {"content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}], "stop_reason": "tool_use",
           "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 4, "cache_read_input_tokens": 0}}
    out = anthropic_wire.render_message(ChatResult("", "tool_calls", raw=raw, raw_wire="anthropic"),
                                        _anthropic_req(), "msg_1")
    assert out["content"] == raw["content"] and out["stop_reason"] == "tool_use" and out["usage"] == raw["usage"]


def test_anthropic_stream_forwards_block_events_and_the_upstream_stop():
    start = {"type": "content_block_start", "index": 0,
             "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}}}
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{}"}}
    stop = {"type": "content_block_stop", "index": 0}
    message_delta = {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                     "usage": {"output_tokens": 7}}
    raw = _collect(anthropic_wire.render_stream(_chunks(
        ChatChunk(raw=(start, delta), raw_wire="anthropic"),
        ChatChunk(raw=(stop, message_delta), raw_wire="anthropic", finish_reason="tool_calls",
                  usage=Usage(2, 7))), _anthropic_req(stream=True), "msg_1"))
    events = [(b.split("\n")[0][7:], json.loads(b.split("\n")[1][6:])) for b in raw.decode().strip().split("\n\n")]
    assert [name for name, _ in events] == ["message_start", "ping", "content_block_start", "content_block_delta",
                                            "content_block_stop", "message_delta", "message_stop"]
    assert events[2][1] == start and events[3][1] == delta and events[4][1] == stop
    assert events[5][1]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert events[5][1]["usage"]["output_tokens"] == 7

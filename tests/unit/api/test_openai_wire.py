"""Parsing and rendering of the OpenAI chat completions wire format."""

import asyncio

import orjson
import pytest

from clearance.api.errors import ApiError
from clearance.api.openai import parse_request, render_stream
from clearance.routing.backends.base import UpstreamError
from clearance.types import ChatChunk, Usage


def test_parses_multipart_content_tools_and_developer_role():
    req = parse_request({"model": "m", "messages": [
        {"role": "developer", "content": "be nice"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "type": "function",
                                                               "function": {"name": "f", "arguments": "{\"x\":1}"}}]},
        {"role": "tool", "tool_call_id": "1", "content": "tool says hi"}], "stop": "END", "seed": 3}, "req_1")
    assert [m.role for m in req.messages] == ["system", "user", "assistant", "tool"]
    assert req.messages[1].content == "a\nb"
    assert "arguments" in req.messages[2].content  # tool-call text is screened too
    assert req.texts()[-1] == "tool says hi"
    assert req.stop == ("END",) and req.params == {"seed": 3}


@pytest.mark.parametrize("body,param", [
    ({"messages": [{"role": "user", "content": "x"}]}, "model"),
    ({"model": "m", "messages": []}, "messages"),
    ({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}, "messages"),
    ({"model": "m", "messages": [{"role": ["user"], "content": "x"}]}, "messages"),
    ({"model": "m", "messages": [{"role": {"a": 1}, "content": "x"}]}, "messages"),
    ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "top_p": 3}, "top_p"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": [1]}, "stop"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 0}, "n"),
])
def test_rejects_bad_bodies_naming_the_parameter(body, param):
    with pytest.raises(ApiError) as exc:
        parse_request(body, "req_1")
    assert exc.value.status == 400 and exc.value.param == param


def _collect(gen):
    """The stream's SSE events, each ending in a blank line, however they were split into parts."""
    async def run():
        return b"".join([b async for b in gen])
    raw = asyncio.run(run())
    assert raw.endswith(b"\n\n")
    return [e + b"\n\n" for e in raw[:-2].split(b"\n\n")]


def test_stream_events_in_order_with_role_first_and_fewer_parts():
    req = parse_request({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}, "req_1")

    async def chunks():
        yield ChatChunk(delta="he")
        yield ChatChunk(delta="")
        yield ChatChunk(delta="llo")
        yield ChatChunk(finish_reason="stop", usage=Usage(3, 2))

    async def run():
        return [b async for b in render_stream(chunks(), req, include_usage=True)]
    parts = asyncio.run(run())
    # The role event goes out with the first content, the closing events together.
    assert len(parts) == 3
    events = _collect(render_stream(chunks(), req, include_usage=True))
    deltas = [orjson.loads(e[6:])["choices"][0]["delta"] for e in events[:-2]]
    assert deltas == [{"role": "assistant", "content": ""}, {"content": "he"}, {"content": "llo"}, {}]
    assert orjson.loads(events[-3][6:])["choices"][0]["finish_reason"] == "stop"


def test_stream_without_content_still_opens_with_role():
    req = parse_request({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}, "req_1")

    async def chunks():
        yield ChatChunk(finish_reason="stop")

    events = _collect(render_stream(chunks(), req, include_usage=False))
    deltas = [orjson.loads(e[6:])["choices"][0]["delta"] for e in events[:-1]]
    assert deltas == [{"role": "assistant", "content": ""}, {}]
    assert events[-1] == b"data: [DONE]\n\n"


def test_stream_ends_with_done_and_usage():
    req = parse_request({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}, "req_1")

    async def chunks():
        yield ChatChunk(delta="he")
        yield ChatChunk(delta="llo")
        yield ChatChunk(finish_reason="stop", usage=Usage(3, 2))

    events = _collect(render_stream(chunks(), req, include_usage=True))
    assert events[-1] == b"data: [DONE]\n\n"
    usage = orjson.loads(events[-2][6:])["usage"]
    assert usage == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    text = "".join(orjson.loads(e[6:])["choices"][0]["delta"].get("content", "") for e in events[:-2])
    assert text == "hello"


def test_stream_broken_midway_ends_with_error_not_done():
    req = parse_request({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}, "req_1")

    async def chunks():
        yield ChatChunk(delta="he")
        raise UpstreamError("backend b: connection reset")

    events = _collect(render_stream(chunks(), req, include_usage=True))
    assert b"[DONE]" not in events[-1]
    assert orjson.loads(events[-1][6:])["error"]["code"] == "stream_interrupted"


def test_reasoning_effort_and_verbosity_are_forwarded():
    req = parse_request({"model": "m", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": "low",
                         "verbosity": "high"}, "req_1")
    assert req.params == {"reasoning_effort": "low", "verbosity": "high"}

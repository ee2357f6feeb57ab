"""Tests for the upstream Anthropic Messages backend (clearance.routing.backends.anthropic).

The upstream is a TEST DOUBLE: a small Starlette app standing in for the
Anthropic Messages API, served by uvicorn on a free loopback port.  The model
name in each request picks how the double behaves (answer, rate-limit, fail,
hang, break the stream).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from clearance.routing.backends.transport import Timeouts, make_session
from clearance.routing.backends.anthropic import AnthropicBackend, build_body, finish_reason
from clearance.routing.backends.base import UpstreamError
from clearance.types import ChatChunk, ChatRequest, ChatResult, Message

API_KEY = "sk-ant-test-SECRET-0123456789"


# --------------------------------------------------------------------------- the test double

class _Upstream:
    """TEST DOUBLE of the Anthropic Messages API; records what it was sent."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.release = threading.Event()
        self.app = Starlette(routes=[Route("/v1/messages", self.messages, methods=["POST"])])

    async def _hang(self) -> None:
        while not self.release.is_set():
            await asyncio.sleep(0.02)

    @staticmethod
    def _event(name: str, data: dict[str, Any]) -> bytes:
        return f"event: {name}\r\ndata: {json.dumps(data)}\r\n\r\n".encode()

    def _opening(self, model: str) -> list[bytes]:
        return [
            self._event("message_start", {"type": "message_start", "message": {
                "id": "msg_up", "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": None, "stop_sequence": None,
                "usage": {"input_tokens": 20, "cache_read_input_tokens": 5, "output_tokens": 1}}}),
            self._event("content_block_start", {"type": "content_block_start", "index": 0,
                                                "content_block": {"type": "text", "text": ""}}),
            b": a comment line the parser must skip\n\n",
            self._event("ping", {"type": "ping"}),
            self._event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                "delta": {"type": "text_delta", "text": "Hel"}}),
        ]

    def _closing(self) -> list[bytes]:
        return [
            self._event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                "delta": {"type": "text_delta", "text": "lo"}}),
            self._event("content_block_stop", {"type": "content_block_stop", "index": 0}),
            self._event("message_delta", {"type": "message_delta",
                                          "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
                                          "usage": {"output_tokens": 2}}),
        ]

    async def messages(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append((dict(request.headers), body))
        model = body["model"]
        stream = body.get("stream", False)
        if model == "rate-limited":
            return JSONResponse({"type": "error", "error": {"type": "rate_limit_error", "message": "Slow down"}},
                                status_code=429)
        if model == "server-error":
            return JSONResponse({"type": "error", "error": {"type": "api_error", "message": "Internal"}},
                                status_code=500)
        if model == "overloaded":
            return JSONResponse({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
                                status_code=529)
        if model == "bad-key":
            # Some upstreams echo the credential back; the backend must not pass it on.
            key = request.headers.get("x-api-key", "")
            return JSONResponse({"type": "error", "error": {"type": "authentication_error",
                                                            "message": f"invalid x-api-key {key}"}},
                                status_code=401)
        if model == "bad-request":
            return JSONResponse({"type": "error", "error": {"type": "invalid_request_error",
                                                            "message": "max_tokens: too large"}},
                                status_code=400)
        if model == "not-json":
            return PlainTextResponse("<html>gateway</html>")
        if model == "hang":
            await self._hang()
        if not stream:
            return JSONResponse({
                "id": "msg_up", "type": "message", "role": "assistant", "model": f"{model}-20250101",
                "content": [{"type": "text", "text": "Hello "}, {"type": "tool_use", "id": "t", "name": "f",
                                                                "input": {}},
                            {"type": "text", "text": "world"}],
                "stop_reason": "stop_sequence", "stop_sequence": "END",
                "usage": {"input_tokens": 30, "cache_creation_input_tokens": 2, "output_tokens": 7}})
        return StreamingResponse(self._stream(model), media_type="text/event-stream")

    async def _stream(self, model: str) -> AsyncIterator[bytes]:
        for frame in self._opening(model):
            yield frame
        if model == "broken-stream":
            raise RuntimeError("test double drops the connection mid-stream")
        if model == "stall-mid-stream":
            await self._hang()
        if model == "error-event":
            yield self._event("error", {"type": "error", "error": {"type": "overloaded_error",
                                                                    "message": "Overloaded"}})
            return
        if model == "bad-json-event":
            yield b"event: content_block_delta\ndata: {not json\n\n"
            return
        for frame in self._closing():
            yield frame
        if model == "no-stop":
            return
        yield self._event("message_stop", {"type": "message_stop"})


class _LoopbackServer:
    """Runs an ASGI app with uvicorn on a free loopback port in a thread."""

    def __init__(self, app: Any):
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="off", loop="asyncio"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def __enter__(self) -> _LoopbackServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("loopback test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, _Upstream]]:
    double = _Upstream()
    with _LoopbackServer(double.app) as server:
        yield f"http://127.0.0.1:{server.port}", double
        double.release.set()


def _req(*messages: Message, stream: bool = False, **kw: Any) -> ChatRequest:
    msgs = messages or (Message("user", "Hi"),)
    return ChatRequest(request_id="req_b", model="logical", messages=tuple(msgs), stream=stream, **kw)


def _complete(base_url: str, model: str, *, api_key: str | None = API_KEY,
              timeout: Timeouts = Timeouts()) -> ChatResult:
    async def run() -> ChatResult:
        async with make_session() as session:
            backend = AnthropicBackend("anthro", base_url, api_key, timeout, session)
            try:
                return await backend.complete(_req(), model)
            finally:
                await backend.aclose()
    return asyncio.run(run())


def _stream(base_url: str, model: str, received: list[ChatChunk] | None = None,
            timeout: Timeouts = Timeouts()) -> list[ChatChunk]:
    out = received if received is not None else []

    async def run() -> None:
        async with make_session() as session:
            backend = AnthropicBackend("anthro", base_url, API_KEY, timeout, session)
            async for chunk in backend.stream(_req(stream=True), model):
                out.append(chunk)
    asyncio.run(run())
    return out


# --------------------------------------------------------------------------- translation

def test_build_body_translates_the_neutral_request() -> None:
    req = _req(
        Message("system", "Rule one."), Message("system", "Rule two."),
        Message("user", "a"), Message("user", "b"),
        Message("assistant", ""),  # e.g. an OpenAI tool-call turn without text
        Message("tool", "tool output"), Message("assistant", "c"),
        temperature=1.7, top_p=0.8, stop=("END",), params={"top_k": 5, "user": "u-1", "store": False},
    )
    body = build_body(req, "claude-up", stream=True)
    assert body["model"] == "claude-up"
    assert body["system"] == "Rule one.\n\nRule two."
    assert body["messages"] == [{"role": "user", "content": "a\n\nb\n\ntool output"},
                                {"role": "assistant", "content": "c"}]
    assert body["max_tokens"] == 1024
    assert body["temperature"] == 1.0  # clamped to the Messages API range
    assert body["top_p"] == 0.8
    assert body["stop_sequences"] == ["END"]
    assert body["top_k"] == 5
    assert body["metadata"] == {"user_id": "u-1"}
    assert body["stream"] is True
    assert "store" not in body  # a hint about the provider's storage, not about the answer


@pytest.mark.parametrize("name,value", [("seed", 3), ("response_format", {"type": "json_object"}),
                                        ("reasoning_effort", "high"), ("frequency_penalty", 0.5),
                                        ("logprobs", True), ("min_p", 0.1)])
def test_build_body_refuses_what_it_cannot_express(name, value) -> None:
    from clearance.routing.backends.base import Unsupported

    with pytest.raises(Unsupported, match=f"^{name}: not supported"):
        build_body(_req(params={name: value}), "m", stream=False)
    build_body(_req(params={name: None}), "m", stream=False)  # null is the same as absent


def test_build_body_minimal() -> None:
    body = build_body(_req(max_tokens=77), "m", stream=False)
    assert body == {"model": "m", "max_tokens": 77, "messages": [{"role": "user", "content": "Hi"}]}


@pytest.mark.parametrize(("stop", "finish"), [
    ("end_turn", "stop"), ("max_tokens", "length"), ("stop_sequence", "stop"), ("tool_use", "tool_calls"),
    ("refusal", "content_filter"), (None, "stop"), ("brand_new_reason", "stop"),
])
def test_finish_reason(stop: str | None, finish: str) -> None:
    assert finish_reason(stop) == finish


# --------------------------------------------------------------------------- against the test double

def test_complete_json(upstream: tuple[str, _Upstream]) -> None:
    base_url, double = upstream
    result = _complete(base_url, "claude-up")
    assert result.content == "Hello world"
    assert result.finish_reason == "stop"
    assert result.usage.prompt_tokens == 32 and result.usage.completion_tokens == 7
    assert result.backend == "anthro"
    assert result.upstream_model == "claude-up-20250101"
    headers, body = double.requests[-1]
    assert headers["x-api-key"] == API_KEY
    assert headers["anthropic-version"] == "2023-06-01"
    assert body["messages"] == [{"role": "user", "content": "Hi"}] and "stream" not in body


def test_base_url_ending_in_v1_and_no_key(upstream: tuple[str, _Upstream]) -> None:
    base_url, double = upstream
    result = _complete(base_url + "/v1/", "claude-up", api_key=None)
    assert result.content == "Hello world"
    headers, _ = double.requests[-1]
    assert "x-api-key" not in headers


def test_stream_sse(upstream: tuple[str, _Upstream]) -> None:
    base_url, double = upstream
    chunks = _stream(base_url, "claude-up")
    assert "".join(c.delta for c in chunks) == "Hello"
    final = chunks[-1]
    assert final.finish_reason == "length"
    assert final.usage is not None
    assert final.usage.prompt_tokens == 25 and final.usage.completion_tokens == 2
    assert [c for c in chunks if c.finish_reason is not None] == [final]
    headers, body = double.requests[-1]
    assert body["stream"] is True and headers["x-api-key"] == API_KEY


@pytest.mark.parametrize(("model", "status", "retryable", "upstream_status", "detail"), [
    ("rate-limited", 429, True, 429, "Slow down"),
    ("server-error", 502, True, 500, "Internal"),
    ("overloaded", 502, True, 529, "Overloaded"),
    ("bad-request", 502, False, 400, "max_tokens: too large"),
    ("bad-key", 502, False, 401, "invalid x-api-key"),
])
def test_http_errors_are_mapped(upstream: tuple[str, _Upstream], model: str, status: int, retryable: bool,
                                upstream_status: int, detail: str) -> None:
    base_url, _ = upstream
    for call in (lambda: _complete(base_url, model), lambda: _stream(base_url, model)):
        with pytest.raises(UpstreamError) as caught:
            call()
        err = caught.value
        assert (err.status, err.retryable, err.upstream_status) == (status, retryable, upstream_status)
        assert detail in err.message and "anthro" in err.message
        assert API_KEY not in str(err) and API_KEY not in err.message


def test_not_json_answer(upstream: tuple[str, _Upstream]) -> None:
    base_url, _ = upstream
    with pytest.raises(UpstreamError) as caught:
        _complete(base_url, "not-json")
    assert caught.value.status == 502 and caught.value.retryable


def test_connect_refused_is_retryable_502() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}"
    for call in (lambda: _complete(base_url, "m"), lambda: _stream(base_url, "m")):
        with pytest.raises(UpstreamError) as caught:
            call()
        assert caught.value.status == 502 and caught.value.retryable
        assert API_KEY not in str(caught.value)


def test_hang_times_out_as_504(upstream: tuple[str, _Upstream]) -> None:
    base_url, _ = upstream
    timeout = Timeouts(total=0.3, connect=2.0)
    for call in (lambda: _complete(base_url, "hang", timeout=timeout),
                 lambda: _stream(base_url, "hang", timeout=timeout)):
        with pytest.raises(UpstreamError) as caught:
            call()
        assert caught.value.status == 504 and caught.value.retryable
        assert "timed out" in caught.value.message


def test_stall_mid_stream_times_out_after_first_token(upstream: tuple[str, _Upstream]) -> None:
    base_url, _ = upstream
    received: list[ChatChunk] = []
    with pytest.raises(UpstreamError) as caught:
        _stream(base_url, "stall-mid-stream", received, timeout=Timeouts(total=0.3, connect=2.0))
    assert caught.value.status == 504
    assert "".join(c.delta for c in received) == "Hel"


@pytest.mark.parametrize("model", ["broken-stream", "no-stop", "error-event", "bad-json-event"])
def test_broken_streams_raise_after_partial_output(upstream: tuple[str, _Upstream], model: str) -> None:
    base_url, _ = upstream
    received: list[ChatChunk] = []
    with pytest.raises(UpstreamError) as caught:
        _stream(base_url, model, received)
    err = caught.value
    assert err.status == 502
    assert "".join(c.delta for c in received).startswith("Hel")
    assert all(c.finish_reason is None for c in received)  # never a clean finish
    assert API_KEY not in str(err)


def test_error_event_message_is_passed_on(upstream: tuple[str, _Upstream]) -> None:
    base_url, _ = upstream
    with pytest.raises(UpstreamError) as caught:
        _stream(base_url, "error-event")
    assert "overloaded_error" in caught.value.message and caught.value.retryable


def test_consumer_may_stop_early(upstream: tuple[str, _Upstream]) -> None:
    base_url, _ = upstream

    async def run() -> str:
        async with make_session() as session:
            backend = AnthropicBackend("anthro", base_url, API_KEY, session=session)
            stream = backend.stream(_req(stream=True), "claude-up")
            first = await anext(stream)
            await stream.aclose()
            return first.delta

    assert asyncio.run(run()).startswith("Hel")  # events that arrive together come as one chunk

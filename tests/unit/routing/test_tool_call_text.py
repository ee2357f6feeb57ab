"""An answer's tool-call arguments are part of what is screened and recorded, streamed or not.

Against the SIMULATED upstreams (test doubles) of ``clearance.demo.upstream``.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from clearance.demo.run import start_in_thread
from clearance.demo.upstream import create_upstream_app
from clearance.routing.backends.anthropic import AnthropicBackend
from clearance.routing.backends.openai import OpenAIBackend
from clearance.routing.backends.transport import make_session
from clearance.types import ChatRequest, Message
from tests.conftest import free_port

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.fixture(scope="module")
def upstream():
    port = free_port()
    server = start_in_thread(create_upstream_app("sim"), port)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True


def _run(backend_cls, url: str, req: ChatRequest):
    async def run():
        async with make_session() as session:
            backend = backend_cls("b", url, None, session=session)
            done = await backend.complete(req, "up")
            chunks = [c async for c in backend.stream(ChatRequest(**{**_fields(req), "stream": True}), "up")]
            return done, chunks
    return asyncio.run(run())


def _fields(req: ChatRequest) -> dict:
    return {f: getattr(req, f) for f in req.__slots__}


def test_openai_backend_reports_the_arguments(upstream):
    req = ChatRequest(request_id="r", model="m", messages=(Message("user", "hi"),),
                      params={"tools": [{"type": "function", "function": {"name": "f", "parameters": SCHEMA}}]})
    done, chunks = _run(OpenAIBackend, upstream + "/v1", req)
    assert done.content == "" and json.loads(done.calls_text) == {"city": "example"}
    assert json.loads(done.answer_text) == {"city": "example"}
    assert json.loads("".join(c.calls_text for c in chunks)) == {"city": "example"}
    assert chunks[-1].finish_reason == "tool_calls"


def test_anthropic_backend_reports_the_arguments(upstream):
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"name": "f", "input_schema": SCHEMA}]}
    req = ChatRequest(request_id="r", model="m", messages=(Message("user", "hi"),), wire="anthropic", raw=body)
    done, chunks = _run(AnthropicBackend, upstream, req)
    assert json.loads(done.calls_text) == {"city": "example"}
    assert json.loads("".join(c.calls_text for c in chunks)) == {"city": "example"}
    assert chunks[-1].finish_reason == "tool_calls"

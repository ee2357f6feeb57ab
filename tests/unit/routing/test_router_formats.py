"""A request a backend cannot serve in its format moves on along the route, and is the client's 400 at the end."""

from __future__ import annotations

import asyncio

import pytest

from clearance.config import BackendSettings, ModelSettings
from clearance.routing.backends.anthropic import build_body
from clearance.routing.backends.base import Unsupported, UpstreamError
from clearance.routing.backends.openai import request_body
from clearance.routing.router import Router
from clearance.types import ChatChunk, ChatRequest, ChatResult, Message


class _Backend:
    """TEST DOUBLE: serves text, or refuses as a backend of the other format does."""

    def __init__(self, name: str, refuses: bool):
        self.name, self.refuses, self.calls = name, refuses, 0

    async def complete(self, req, model):
        self.calls += 1
        if self.refuses:
            raise Unsupported("tools: not supported when the model's backend speaks the other format",
                              status=400, retryable=True)
        return ChatResult(content="ok", backend=self.name)

    async def stream(self, req, model):
        await self.complete(req, model)
        yield ChatChunk(delta="ok", finish_reason="stop")

    async def aclose(self):
        pass


def _router(*backends: _Backend) -> tuple[Router, ModelSettings]:
    settings = {b.name: BackendSettings(name=b.name, base_url="http://127.0.0.1:1", breaker_failures=1)
                for b in backends}
    return Router({b.name: b for b in backends}, settings), ModelSettings(name="m", backends=list(settings))


def _req() -> ChatRequest:
    return ChatRequest(request_id="r", model="m", messages=(Message("user", "hi"),))


def test_next_backend_serves_what_the_first_cannot_and_no_circuit_opens():
    router, model = _router(_Backend("other-format", True), _Backend("same-format", False))
    result, attempts = asyncio.run(router.complete(_req(), model))
    assert result.backend == "same-format" and attempts.fallbacks == ["other-format"]
    assert router.breakers["other-format"].allow()  # breaker_failures=1, yet nothing counted


def test_when_no_backend_can_serve_it_the_client_gets_a_400_naming_the_field():
    router, model = _router(_Backend("a", True))
    for call in (lambda: router.complete(_req(), model), lambda: router.open_stream(_req(), model)):
        with pytest.raises(UpstreamError) as caught:
            asyncio.run(call())
        assert caught.value.status == 400 and caught.value.message.startswith("tools: not supported")


@pytest.mark.parametrize(("raw", "field"), [
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools.0: web_search_20250305 tools"),
    ({"tool_choice": {"type": "whatever"}}, "tool_choice"),
    ({"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]}, "messages.0.content.0"),
    ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "thinking"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}, "messages.0.content.0"),
    ({"context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]}},
     "context_management.edits.0: clear_tool_uses_20250919 edits"),
    ({"output_config": {"effort": "max"}}, "output_config.effort: 'max'"),
    ({"output_config": {"task_budget": {"tokens": 5}}}, "output_config.task_budget"),
    ({"inference_geo": "us"}, "inference_geo"),
])
def test_openai_backend_refuses_what_an_anthropic_request_holds_beyond_text(raw, field):
    req = ChatRequest(request_id="r", model="m", messages=(Message("user", "hi"),), wire="anthropic", raw=raw)
    with pytest.raises(Unsupported) as caught:
        request_body(req, "up")
    assert caught.value.message.startswith(field)


@pytest.mark.parametrize(("req", "field"), [
    (ChatRequest(request_id="r", model="m", messages=(Message("user", "hi"),),
                 params={"tools": [{"type": "custom", "custom": {"name": "x"}}]}), "tools[0]"),
    (ChatRequest(request_id="r", model="m", messages=(Message("user", "hi"),), params={"logprobs": True}),
     "logprobs"),
    (ChatRequest(request_id="r", model="m", messages=(Message("assistant", "x", {"tool_calls": [
        {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}),)),
     "messages[0].tool_calls[0].function.arguments"),
    (ChatRequest(request_id="r", model="m", messages=(Message("user", "", {"content": [
        {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}),)),
     "messages[0].content[0]: input_audio parts"),
])
def test_anthropic_backend_refuses_what_an_openai_request_holds_beyond_text(req, field):
    with pytest.raises(Unsupported) as caught:
        build_body(req, "up", stream=False)
    assert caught.value.message.startswith(field)


def test_an_anthropic_request_goes_to_an_anthropic_backend_as_sent():
    raw = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], "tools": [{"name": "f"}],
           "cache_control": {"type": "ephemeral"}, "service_tier": "auto", "stream": False}
    req = ChatRequest(request_id="r", model="m", messages=(Message("user", "hi"),), wire="anthropic", raw=raw)
    body = build_body(req, "claude-up", stream=True)
    assert body == {**{k: v for k, v in raw.items() if k != "service_tier"}, "model": "claude-up", "stream": True}


def test_an_openai_conversation_with_tool_calls_becomes_anthropic_blocks():
    from clearance.api.openai import parse_request
    req = parse_request({"model": "m", "parallel_tool_calls": False, "tool_choice": "required", "tools": [
        {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}],
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "look"},
                                         {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "result"},
            {"role": "user", "content": "thanks"}]}, "r")
    body = build_body(req, "up", stream=False)
    assert body["system"] == "Be brief."
    assert body["tools"] == [{"name": "f", "input_schema": {"type": "object"}, "description": "d"}]
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image", "source": {
            "type": "base64", "media_type": "image/png", "data": "AAAA"}}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "f", "input": {"a": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "result"},
                                     {"type": "text", "text": "thanks"}]}]


def test_a_refusal_during_a_half_open_trial_frees_the_trial():
    clock = [0.0]
    router, model = _router(_Backend("a", True))
    breaker = router.breakers["a"]
    breaker.clock = lambda: clock[0]
    breaker.failure()  # breaker_failures=1: open
    clock[0] = 10_000.0  # past the cooldown: half-open, one trial allowed
    with pytest.raises(UpstreamError):
        asyncio.run(router.complete(_req(), model))
    assert breaker.state == "half_open" and breaker.allow()  # the trial slot was given back


def test_openai_backend_expresses_a_coding_agents_settings_in_its_own_terms():
    """Adaptive thinking, thinking-clearing edits, effort and an output schema: served, translated."""
    from clearance.api.anthropic import parse_request
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    req = parse_request({
        "model": "m", "max_tokens": 50, "thinking": {"type": "adaptive"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high", "format": {"type": "json_schema", "schema": schema}},
        "tools": [{"name": "Read", "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "user", "content": "read it"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "secret", "signature": "sig"},
                                              {"type": "tool_use", "id": "t1", "name": "Read", "input": {"p": "a"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "file text"}]},
            {"role": "system", "content": [{"type": "text", "text": "Mid-turn rule."}]},
        ]}, "r")
    body = request_body(req, "up")
    assert body["reasoning_effort"] == "high"
    assert body["response_format"] == {"type": "json_schema",
                                       "json_schema": {"name": "output", "schema": schema, "strict": True}}
    assert "secret" not in str(body["messages"])  # the earlier model's reasoning is not this model's context
    assert body["messages"][1]["tool_calls"][0]["function"]["name"] == "Read"
    assert body["messages"][-1] == {"role": "system", "content": "Mid-turn rule."}
    assert "thinking" not in body and "context_management" not in body and "output_config" not in body

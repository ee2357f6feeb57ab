"""Tool use, images, logprobs and protocol headers through the real gateway, with the official SDKs.

The upstreams are SIMULATED (``clearance.demo.upstream``, test doubles) and each is
wrapped in a recording stub (also a test double) that keeps what it received, so
the tests can check what the gateway forwarded.
"""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

from clearance.demo.run import start_in_thread
from clearance.demo.upstream import create_upstream_app
from tests.conftest import free_port
from tests.integration.gateway import add_persona, start_gateway, write_config

WEATHER_OPENAI = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                   "required": ["city", "days"]}}}
WEATHER_ANTHROPIC = {"name": "get_weather", "description": "Current weather in a city",
                     "input_schema": WEATHER_OPENAI["function"]["parameters"]}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


class Recording:
    """TEST DOUBLE: an ASGI wrapper around a simulated upstream that records each request it received."""

    def __init__(self, app) -> None:
        self.app = app
        self.requests: list[dict] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] == "/_control":
            return await self.app(scope, receive, send)
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        self.requests.append({"path": scope["path"], "body": json.loads(body),
                              "headers": {k.decode(): v.decode() for k, v in scope["headers"]}})
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    @property
    def last(self) -> dict:
        return self.requests[-1]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tools")
    oa, an = Recording(create_upstream_app("oa-sim")), Recording(create_upstream_app("an-sim"))
    servers = []
    urls = {}
    for name, app in (("oa", oa), ("an", an)):
        port = free_port()
        servers.append(start_in_thread(app, port))
        urls[name] = f"http://127.0.0.1:{port}"
    backends = [{"name": "oa", "base_url": urls["oa"] + "/v1"},
                {"name": "an", "kind": "anthropic", "base_url": urls["an"]}]
    models = [{"name": "gpt-sim", "backends": ["oa"]}, {"name": "claude-sim", "backends": ["an"]},
              {"name": "claude-text-only", "backends": ["an"]}, {"name": "gpt-forbidden", "backends": ["oa"]}]
    (tmp / "allow.cedar").write_text(
        '@id("allow-all")\npermit (principal, action, resource);\n'
        '@id("no-shell-tool") @title("No shell tool on gpt-sim")\n'
        'forbid (principal, action, resource == Clearance::Model::"gpt-sim") when { context.tools.contains("run_shell") };\n'
        '@id("no-images") @title("No images on claude-text-only")\n'
        'forbid (principal, action, resource == Clearance::Model::"claude-text-only") when { context.has_images };\n'
        '@id("closed-model") @title("Nobody uses gpt-forbidden")\n'
        'forbid (principal, action, resource == Clearance::Model::"gpt-forbidden");\n')
    config = write_config(tmp, f"sqlite:///{tmp / 'clearance.db'}", backends, models,
                          policy={"files": ["allow.cedar"]})
    key = add_persona(config, "alice", "acme")
    gw = start_gateway(config)
    yield {"gw": gw, "key": key, "oa": oa, "an": an, "db": tmp / "clearance.db"}
    gw.stop()
    for s in servers:
        s.should_exit = True


@pytest.fixture
def oai(world):
    return openai.OpenAI(base_url=world["gw"].url + "/v1", api_key=world["key"], max_retries=0)


@pytest.fixture
def claude(world):
    return anthropic.Anthropic(base_url=world["gw"].url, api_key=world["key"], max_retries=0)


# --------------------------------------------------------------------------- OpenAI surface

def test_openai_tool_call_round_trip(world, oai):
    ask = [{"role": "user", "content": "What is the weather in Oslo?"}]
    first = oai.chat.completions.create(model="gpt-sim", messages=ask, tools=[WEATHER_OPENAI],
                                        tool_choice="auto", parallel_tool_calls=False)
    sent = world["oa"].last["body"]
    assert sent["tools"] == [WEATHER_OPENAI] and sent["tool_choice"] == "auto"
    assert sent["parallel_tool_calls"] is False
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.id.startswith("call_sim") and call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "example", "days": 1}

    history = ask + [choice.message.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": call.id, "content": "Snow, -3 C"}]
    second = oai.chat.completions.create(model="gpt-sim", messages=history, tools=[WEATHER_OPENAI])
    sent = world["oa"].last["body"]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.id and sent[1]["content"] is None
    assert sent[2] == {"role": "tool", "tool_call_id": call.id, "content": "Snow, -3 C"}
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content.startswith("[simulated oa-sim]")


def test_openai_streamed_tool_call_arrives_in_fragments(world, oai):
    stream = oai.chat.completions.create(model="gpt-sim", stream=True, tools=[WEATHER_OPENAI],
                                         messages=[{"role": "user", "content": "Weather in Oslo?"}])
    calls: dict[int, dict] = {}
    fragments, finish = 0, None
    for chunk in stream:
        for choice in chunk.choices:
            for tc in choice.delta.tool_calls or ():
                slot = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
                slot["id"] = tc.id or slot["id"]
                if tc.function and tc.function.name:
                    slot["name"] += tc.function.name
                if tc.function and tc.function.arguments:
                    slot["arguments"] += tc.function.arguments
                    fragments += 1
            finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    assert fragments > 1
    assert calls[0]["id"].startswith("call_sim") and calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"city": "example", "days": 1}

    history = [{"role": "user", "content": "Weather in Oslo?"},
               {"role": "assistant", "content": None, "tool_calls": [
                   {"id": calls[0]["id"], "type": "function",
                    "function": {"name": "get_weather", "arguments": calls[0]["arguments"]}}]},
               {"role": "tool", "tool_call_id": calls[0]["id"], "content": "Snow"}]
    text = "".join(c.choices[0].delta.content or "" for c in
                   oai.chat.completions.create(model="gpt-sim", stream=True, messages=history, tools=[WEATHER_OPENAI])
                   if c.choices)
    assert text.startswith("[simulated oa-sim]")


def test_openai_logprobs_come_back(oai):
    done = oai.chat.completions.create(model="gpt-sim", logprobs=True, top_logprobs=0,
                                       messages=[{"role": "user", "content": "Hello"}])
    tokens = done.choices[0].logprobs.content
    assert "".join(t.token + " " for t in tokens).strip() == done.choices[0].message.content
    streamed = [c.choices[0].logprobs for c in oai.chat.completions.create(
        model="gpt-sim", logprobs=True, stream=True, messages=[{"role": "user", "content": "Hello"}])
        if c.choices and c.choices[0].logprobs is not None]
    assert streamed and all(lp.content[0].logprob == -0.5 for lp in streamed)


def test_several_choices_come_back_whole_and_streamed(world, oai):
    done = oai.chat.completions.create(model="gpt-sim", n=3, messages=[{"role": "user", "content": "Hello"}])
    assert world["oa"].last["body"]["n"] == 3
    assert [c.index for c in done.choices] == [0, 1, 2]
    first = done.choices[0].message.content
    assert first.startswith("[simulated oa-sim]")
    assert [c.message.content for c in done.choices[1:]] == [f"(2) {first}", f"(3) {first}"]
    texts: dict[int, str] = {}
    finishes: dict[int, str] = {}
    for chunk in oai.chat.completions.create(model="gpt-sim", n=2, stream=True,
                                             messages=[{"role": "user", "content": "Hello"}]):
        for c in chunk.choices:
            texts[c.index] = texts.get(c.index, "") + (c.delta.content or "")
            if c.finish_reason:
                finishes[c.index] = c.finish_reason
    assert texts == {0: first, 1: f"(2) {first}"} and finishes == {0: "stop", 1: "stop"}


def test_several_choices_from_an_anthropic_backend_or_out_of_range_are_400s(oai):
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(model="claude-sim", n=2, messages=[{"role": "user", "content": "Hi"}])
    assert "n: not supported when the model's backend speaks the other format" in caught.value.message
    for bad in (0, 129, "2"):
        with pytest.raises(openai.BadRequestError) as caught:
            oai.chat.completions.create(model="gpt-sim", n=bad, messages=[{"role": "user", "content": "Hi"}])
        assert "'n' must be an integer between 1 and 128" in caught.value.message
    # n=1 is what every request means: served by either format.
    assert oai.chat.completions.create(model="claude-sim", n=1, messages=[{"role": "user", "content": "Hi"}]
                                       ).choices[0].message.content


def test_openai_image_part_goes_upstream_unchanged(world, oai):
    content = [{"type": "text", "text": "What is in this picture?"},
               {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"}}]
    oai.chat.completions.create(model="gpt-sim", messages=[{"role": "user", "content": content}])
    assert world["oa"].last["body"]["messages"][0]["content"] == content


# --------------------------------------------------------------------------- Anthropic surface

def test_anthropic_tool_use_round_trip_with_headers(world, claude):
    ask = [{"role": "user", "content": [
        {"type": "text", "text": "What is the weather in Oslo?", "cache_control": {"type": "ephemeral"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]}]
    first = claude.messages.create(model="claude-sim", max_tokens=200, messages=ask, tools=[WEATHER_ANTHROPIC],
                                   tool_choice={"type": "auto"}, metadata={"user_id": "u-1"},
                                   stop_sequences=["END"],
                                   extra_headers={"anthropic-beta": "fine-grained-tool-streaming-2025-05-14",
                                                  "anthropic-version": "2023-06-01"})
    received = world["an"].last
    assert received["headers"]["anthropic-beta"] == "fine-grained-tool-streaming-2025-05-14"
    assert received["headers"]["anthropic-version"] == "2023-06-01"
    sent = received["body"]
    assert sent["tools"] == [WEATHER_ANTHROPIC] and sent["tool_choice"] == {"type": "auto"}
    assert sent["messages"] == ask and sent["metadata"] == {"user_id": "u-1"} and sent["stop_sequences"] == ["END"]
    assert first.stop_reason == "tool_use"
    (use,) = first.content
    assert use.type == "tool_use" and use.name == "get_weather" and use.input == {"city": "example", "days": 1}

    history = ask + [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                                   "content": [{"type": "text", "text": "Snow, -3 C"}]}]}]
    second = claude.messages.create(model="claude-sim", max_tokens=200, messages=history, tools=[WEATHER_ANTHROPIC])
    assert world["an"].last["body"]["messages"] == history
    assert second.stop_reason == "end_turn" and second.content[0].text.startswith("[simulated an-sim]")


def test_anthropic_streamed_tool_use_passes_input_json_deltas(world, claude):
    kinds, partial = [], []
    with claude.messages.stream(model="claude-sim", max_tokens=200, tools=[WEATHER_ANTHROPIC],
                                thinking={"type": "enabled", "budget_tokens": 1024},
                                messages=[{"role": "user", "content": "Weather in Oslo?"}]) as stream:
        for event in stream:
            kinds.append(event.type)
            if event.type == "content_block_start":
                assert event.content_block.type == "tool_use" and event.content_block.name == "get_weather"
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                partial.append(event.delta.partial_json)
        final = stream.get_final_message()
    assert world["an"].last["body"]["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert len(partial) > 1 and json.loads("".join(partial)) == {"city": "example", "days": 1}
    assert final.stop_reason == "tool_use" and final.content[0].input == {"city": "example", "days": 1}
    assert kinds.count("content_block_start") == 1 and kinds.count("content_block_stop") == 1

    history = [{"role": "user", "content": "Weather in Oslo?"},
               {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in final.content]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": final.content[0].id,
                                             "content": "Snow"}]}]
    with claude.messages.stream(model="claude-sim", max_tokens=200, tools=[WEATHER_ANTHROPIC],
                                messages=history) as stream:
        text = "".join(stream.text_stream)
    assert text.startswith("[simulated an-sim]")


# --------------------------------------------------------------------------- across formats

def test_anthropic_client_tool_use_through_an_openai_backend_is_translated(world, claude):
    ask = [{"role": "user", "content": "Weather in Oslo?"}]
    first = claude.messages.create(model="gpt-sim", max_tokens=50, system="Be brief.", messages=ask,
                                   tools=[WEATHER_ANTHROPIC], tool_choice={"type": "any"})
    sent = world["oa"].last["body"]
    assert sent["tools"] == [WEATHER_OPENAI] and sent["tool_choice"] == "required"
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, ask[0]]
    assert first.stop_reason == "tool_use"
    (use,) = first.content
    assert use.type == "tool_use" and use.id.startswith("call_sim") and use.name == "get_weather"
    assert use.input == {"city": "example", "days": 1}

    picture = {"role": "user", "content": [
        {"type": "text", "text": "And this picture?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]}
    history = [picture, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
               {"role": "user", "content": [
                   {"type": "tool_result", "tool_use_id": use.id, "content": [{"type": "text", "text": "Snow"}]}]}]
    kinds = []
    with claude.messages.stream(model="gpt-sim", max_tokens=50, messages=history, tools=[WEATHER_ANTHROPIC]) as stream:
        for event in stream:
            kinds.append(event.type)
        final = stream.get_final_message()
    assert final.stop_reason == "end_turn" and final.content[0].text.startswith("[simulated oa-sim]")
    sent = world["oa"].last["body"]["messages"]
    assert sent[0] == {"role": "user", "content": [
        {"type": "text", "text": "And this picture?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}
    assert sent[1] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": use.id, "type": "function", "function": {"name": "get_weather",
                                                        "arguments": json.dumps(use.input)}}]}
    assert sent[2] == {"role": "tool", "tool_call_id": use.id, "content": "Snow"}


def test_anthropic_client_streamed_tool_use_through_an_openai_backend(world, claude):
    partial, starts = [], []
    with claude.messages.stream(model="gpt-sim", max_tokens=50, tools=[WEATHER_ANTHROPIC],
                                messages=[{"role": "user", "content": "Weather in Oslo?"}]) as stream:
        for event in stream:
            if event.type == "content_block_start":
                starts.append(event.content_block.type)
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                partial.append(event.delta.partial_json)
        final = stream.get_final_message()
    assert starts == ["text", "tool_use"] and len(partial) > 1
    assert final.stop_reason == "tool_use"
    assert final.content[-1].name == "get_weather" and final.content[-1].input == {"city": "example", "days": 1}


def test_what_cannot_cross_formats_is_a_clear_400(world, claude):
    calls = len(world["oa"].requests)
    for extra in ({"thinking": {"type": "enabled", "budget_tokens": 1024}},
                  {"tools": [{"type": "web_search_20250305", "name": "web_search"}]}):
        with pytest.raises(anthropic.BadRequestError) as caught:
            claude.messages.create(model="gpt-sim", max_tokens=2048, messages=[{"role": "user", "content": "Hi"}],
                                   **extra)
        assert "not supported when the model's backend speaks the other format" in caught.value.message
        assert caught.value.body["type"] == "error"
    assert len(world["oa"].requests) == calls  # nothing was sent, nothing dropped


def test_openai_client_tool_calls_through_an_anthropic_backend_are_translated(world, oai):
    ask = [{"role": "user", "content": [
        {"type": "text", "text": "Weather where this was taken?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}]
    first = oai.chat.completions.create(model="claude-sim", messages=ask, tools=[WEATHER_OPENAI])
    sent = world["an"].last["body"]
    assert sent["tools"] == [WEATHER_ANTHROPIC]
    assert sent["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "Weather where this was taken?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]}]
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.id.startswith("toolu_sim") and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "example", "days": 1}

    history = ask + [choice.message.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": call.id, "content": "Snow"}]
    text = "".join(c.choices[0].delta.content or "" for c in oai.chat.completions.create(
        model="claude-sim", stream=True, messages=history, tools=[WEATHER_OPENAI]) if c.choices)
    assert text.startswith("[simulated an-sim]")
    assert world["an"].last["body"]["messages"][1:] == [
        {"role": "assistant", "content": [{"type": "tool_use", "id": call.id, "name": "get_weather",
                                           "input": {"city": "example", "days": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "Snow"}]}]


def test_openai_client_streamed_tool_call_through_an_anthropic_backend(oai):
    calls: dict[int, dict] = {}
    finish = None
    for chunk in oai.chat.completions.create(model="claude-sim", stream=True, tools=[WEATHER_OPENAI],
                                             messages=[{"role": "user", "content": "Weather in Oslo?"}]):
        for choice in chunk.choices:
            for tc in choice.delta.tool_calls or ():
                slot = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
                slot["id"] = tc.id or slot["id"]
                slot["name"] += (tc.function.name or "") if tc.function else ""
                slot["arguments"] += (tc.function.arguments or "") if tc.function else ""
            finish = choice.finish_reason or finish
    assert finish == "tool_calls" and list(calls) == [0]
    assert calls[0]["id"].startswith("toolu_sim") and calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"city": "example", "days": 1}


def test_logprobs_from_an_anthropic_backend_is_a_clear_400(oai):
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(model="claude-sim", logprobs=True, messages=[{"role": "user", "content": "Hi"}])
    assert "logprobs: not supported when the model's backend speaks the other format" in caught.value.message


def test_plain_text_still_crosses_formats(oai, claude):
    assert oai.chat.completions.create(model="claude-sim", messages=[{"role": "user", "content": "Hi"}]
                                       ).choices[0].message.content.startswith("[simulated an-sim]")
    assert claude.messages.create(model="gpt-sim", max_tokens=50, messages=[{"role": "user", "content": "Hi"}]
                                  ).content[0].text.startswith("[simulated oa-sim]")


# --------------------------------------------------------------------------- nothing dropped, policy, audit

def test_openai_fields_the_gateway_does_not_read_reach_the_upstream(world, oai):
    """reasoning_effort, store, seed, response_format, a self-hosted server's own options: all forwarded."""
    oai.chat.completions.create(
        model="gpt-sim", messages=[{"role": "user", "content": "hello"}], max_completion_tokens=50,
        reasoning_effort="low", store=False, seed=7, user="u-9", metadata={"ticket": "T-1"},
        response_format={"type": "json_object"}, presence_penalty=0.1, extra_body={"min_p": 0.05, "top_k": 20})
    sent = world["oa"].last["body"]
    for name, value in {"reasoning_effort": "low", "store": False, "seed": 7, "user": "u-9",
                        "metadata": {"ticket": "T-1"}, "response_format": {"type": "json_object"},
                        "presence_penalty": 0.1, "min_p": 0.05, "top_k": 20, "max_completion_tokens": 50}.items():
        assert sent[name] == value, name
    assert "max_tokens" not in sent  # the client's own name for the limit


def test_openai_field_an_anthropic_backend_cannot_express_is_a_400_naming_it(oai):
    with pytest.raises(openai.BadRequestError) as e:
        oai.chat.completions.create(model="claude-sim", messages=[{"role": "user", "content": "hi"}], seed=7)
    assert "seed" in e.value.message and e.value.response.headers["x-request-id"]
    # A hint about the provider's storage changes no answer: served.
    assert oai.chat.completions.create(model="claude-sim", messages=[{"role": "user", "content": "hi"}],
                                       store=False).choices[0].message.content


def test_a_rule_can_forbid_an_offered_tool_by_name(world, oai, claude):
    shell = {"type": "function", "function": {"name": "run_shell", "parameters": {"type": "object"}}}
    with pytest.raises(openai.PermissionDeniedError) as e:
        oai.chat.completions.create(model="gpt-sim", messages=[{"role": "user", "content": "list files"}],
                                    tools=[WEATHER_OPENAI, shell])
    assert "no-shell-tool" in e.value.message
    # The same tool on another model, and another tool on this model, are served.
    oai.chat.completions.create(model="claude-sim", messages=[{"role": "user", "content": "list files"}], tools=[shell])
    oai.chat.completions.create(model="gpt-sim", messages=[{"role": "user", "content": "list files"}],
                                tools=[WEATHER_OPENAI])
    with pytest.raises(anthropic.PermissionDeniedError):  # the Anthropic surface's tools are seen the same way
        claude.messages.create(model="gpt-sim", max_tokens=50, messages=[{"role": "user", "content": "ls"}],
                               tools=[{"name": "run_shell", "input_schema": {"type": "object"}}])


def test_a_rule_can_forbid_images(claude, oai):
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    with pytest.raises(anthropic.PermissionDeniedError) as e:
        claude.messages.create(model="claude-text-only", max_tokens=50,
                               messages=[{"role": "user", "content": [image, {"type": "text", "text": "what?"}]}])
    assert "no-images" in e.value.message
    claude.messages.create(model="claude-text-only", max_tokens=50, messages=[{"role": "user", "content": "what?"}])
    with pytest.raises(openai.PermissionDeniedError):
        oai.chat.completions.create(model="claude-text-only", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG}}]}])


def test_the_audit_entry_names_the_tools_and_says_whether_images_were_sent(world, oai):
    import sqlite3
    import time

    resp = oai.chat.completions.with_raw_response.create(
        model="gpt-sim", tools=[WEATHER_OPENAI], messages=[{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG}}]}])
    rid = resp.headers["x-request-id"]
    deadline = time.monotonic() + 10
    while True:
        with sqlite3.connect(world["db"]) as conn:
            bodies = [json.loads(b) for (b,) in conn.execute("SELECT body FROM audit_entries")]
        mine = [b for b in bodies if b["request_id"] == rid]
        if len(mine) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert mine and all(e["tools"] == ["get_weather"] and e["images"] is True for e in mine)
    assert PNG not in json.dumps(mine)  # digests only, never the image



# --------------------------------------------------------------------------- embeddings, models, token counts

def _entries(world, rid: str, n: int) -> list[dict]:
    import sqlite3
    import time

    deadline = time.monotonic() + 10
    while True:
        with sqlite3.connect(world["db"]) as conn:
            mine = [json.loads(b) for (b,) in conn.execute("SELECT body FROM audit_entries")]
        mine = [e for e in mine if e["request_id"] == rid]
        if len(mine) >= n or time.monotonic() > deadline:
            return mine
        time.sleep(0.05)


def test_embeddings_are_routed_policy_checked_and_audited(world, oai):
    raw = oai.embeddings.with_raw_response.create(model="gpt-sim", input=["grid alert one", "grid alert two"])
    out = raw.parse()  # the SDK asks for base64 and decodes it
    assert [d.index for d in out.data] == [0, 1] and len(out.data[0].embedding) == 16
    assert out.model == "gpt-sim" and out.usage.prompt_tokens == 6
    assert world["oa"].last["path"] == "/v1/embeddings" and world["oa"].last["body"]["input"] == [
        "grid alert one", "grid alert two"]
    entries = _entries(world, raw.headers["x-request-id"], 2)
    assert {e["kind"] for e in entries} == {"decision", "completion"}
    assert all(e["decision"] == "allow" and e["model"] == "gpt-sim" for e in entries)
    assert any(e["completion_sha256"] and e["prompt_tokens"] == 6 for e in entries)

    floats = oai.embeddings.create(model="gpt-sim", input="x", dimensions=4, encoding_format="float")
    assert len(floats.data[0].embedding) == 4 and world["oa"].last["body"]["dimensions"] == 4
    with pytest.raises(openai.PermissionDeniedError) as e:
        oai.embeddings.create(model="gpt-forbidden", input="x")
    assert "closed-model" in e.value.message


@pytest.mark.parametrize("body,param", [
    ({"model": "gpt-sim", "input": [[1, 2, 3]]}, "input"), ({"model": "gpt-sim"}, "input"),
    ({"model": "gpt-sim", "input": "x", "dimensions": 0}, "dimensions"),
    ({"model": "gpt-sim", "input": "x", "encoding_format": "int8"}, "encoding_format"),
])
def test_bad_embeddings_requests_are_400s_naming_the_field(world, body, param):
    import httpx

    r = httpx.post(world["gw"].url + "/v1/embeddings", json=body, headers={"authorization": f"Bearer {world['key']}"})
    assert r.status_code == 400 and r.json()["error"]["param"] == param and r.headers["x-request-id"]


def test_embeddings_on_a_model_served_only_by_an_anthropic_backend_is_a_400(oai):
    with pytest.raises(openai.BadRequestError) as e:
        oai.embeddings.create(model="claude-sim", input="x")
    assert "embed" in e.value.message


def test_a_model_is_described_only_to_a_caller_who_may_use_it(world, oai, claude):
    assert oai.models.retrieve("gpt-sim").id == "gpt-sim"
    for name in ("gpt-forbidden", "no-such-model"):  # forbidden and unknown look the same
        with pytest.raises(openai.NotFoundError):
            oai.models.retrieve(name)
    assert claude.models.retrieve("claude-sim").id == "claude-sim"
    listed = [m.id for m in claude.models.list()]
    assert "claude-sim" in listed and "gpt-forbidden" not in listed
    import httpx
    assert httpx.get(world["gw"].url + "/v1/models/gpt-sim").status_code == 401


def test_count_tokens_asks_an_anthropic_upstream_and_estimates_otherwise(world, claude):
    msgs = [{"role": "user", "content": "What is the weather in Oslo today?"}]
    raw = claude.messages.with_raw_response.count_tokens(model="claude-sim", messages=msgs, tools=[WEATHER_ANTHROPIC])
    assert raw.parse().input_tokens > 0 and raw.headers["x-clearance-token-count"] == "upstream"
    sent = world["an"].last
    assert sent["path"] == "/v1/messages/count_tokens" and sent["body"]["tools"] == [WEATHER_ANTHROPIC]
    assert "max_tokens" not in sent["body"]
    est = claude.messages.with_raw_response.count_tokens(model="gpt-sim", messages=msgs)
    assert est.headers["x-clearance-token-count"] == "estimate" and est.parse().input_tokens >= 8
    with pytest.raises(anthropic.PermissionDeniedError):
        claude.messages.count_tokens(model="gpt-forbidden", messages=msgs)
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.count_tokens(model="no-such-model", messages=msgs)

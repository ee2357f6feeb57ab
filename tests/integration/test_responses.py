"""The OpenAI Responses API (``POST /v1/responses``) through the real gateway, with the official ``openai`` SDK.

The upstreams are SIMULATED (``clearance.demo.upstream``, test doubles) wrapped in a
recording stub (also a test double), so each test can check what the gateway sent on:
a Responses request reaches an OpenAI-compatible upstream as chat completions and an
Anthropic upstream as the Messages API.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from clearance.demo.run import start_in_thread
from clearance.demo.upstream import create_upstream_app
from tests.conftest import free_port
from tests.integration.gateway import add_persona, start_gateway, write_config
from tests.integration.test_tools import PNG, Recording

WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather in a city", "strict": True,
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                          "required": ["city", "days"], "additionalProperties": False}}
AS_CHAT = {"type": "function", "function": {k: v for k, v in WEATHER.items() if k != "type"}}
AS_ANTHROPIC = {"name": "get_weather", "description": "Current weather in a city",
                "input_schema": WEATHER["parameters"]}
ARGS = {"city": "example", "days": 1}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("responses")
    oa, an = Recording(create_upstream_app("oa-sim")), Recording(create_upstream_app("an-sim"))
    servers, urls = [], {}
    for name, app in (("oa", oa), ("an", an)):
        port = free_port()
        servers.append(start_in_thread(app, port))
        urls[name] = f"http://127.0.0.1:{port}"
    backends = [{"name": "oa", "base_url": urls["oa"] + "/v1"},
                {"name": "an", "kind": "anthropic", "base_url": urls["an"]}]
    models = [{"name": "gpt-sim", "backends": ["oa"]}, {"name": "claude-sim", "backends": ["an"]}]
    (tmp / "allow.cedar").write_text('@id("allow-all")\npermit (principal, action, resource);\n')
    config = write_config(tmp, f"sqlite:///{tmp / 'clearance.db'}", backends, models,
                          policy={"files": ["allow.cedar"]})
    key = add_persona(config, "alice", "acme")
    gw = start_gateway(config)
    yield {"gw": gw, "key": key, "oa": oa, "an": an, "urls": urls}
    gw.stop()
    for s in servers:
        s.should_exit = True


@pytest.fixture
def oai(world):
    return openai.OpenAI(base_url=world["gw"].url + "/v1", api_key=world["key"], max_retries=0)


def _round_trip(oai, model: str):
    """A function tool offered, called, and answered with a function_call_output; returns both responses."""
    ask = [{"role": "user", "content": "What is the weather in Oslo?"}]
    first = oai.responses.create(model=model, instructions="Be brief.", input=ask, tools=[WEATHER],
                                 tool_choice="auto", parallel_tool_calls=False, max_output_tokens=300,
                                 temperature=0.2, user="u-1", metadata={"ticket": "SEC-1"}, store=True)
    assert first.status == "completed" and first.id.startswith("resp_")
    assert first.metadata == {"ticket": "SEC-1"} and first.store is False and first.usage.total_tokens > 0
    (call,) = first.output
    assert call.type == "function_call" and call.name == "get_weather" and json.loads(call.arguments) == ARGS
    history = ask + [call.model_dump(exclude_none=True),
                     {"type": "function_call_output", "call_id": call.call_id, "output": "Snow, -3 C"}]
    second = oai.responses.create(model=model, instructions="Be brief.", input=history, tools=[WEATHER])
    return call, second


def test_function_tool_round_trip_through_an_openai_backend(world, oai):
    call, second = _round_trip(oai, "gpt-sim")
    first_sent = world["oa"].requests[-2]
    assert first_sent["path"] == "/v1/chat/completions"
    body = first_sent["body"]
    assert body["tools"] == [AS_CHAT] and body["tool_choice"] == "auto" and body["parallel_tool_calls"] is False
    assert body["max_tokens"] == 300 and body["temperature"] == 0.2 and body["user"] == "u-1"
    assert body["messages"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "What is the weather in Oslo?"}]
    assert call.call_id.startswith("call_sim")
    sent = world["oa"].last["body"]["messages"]
    assert sent[2] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": call.call_id, "type": "function", "function": {"name": "get_weather", "arguments": call.arguments}}]}
    assert sent[3] == {"role": "tool", "tool_call_id": call.call_id, "content": "Snow, -3 C"}
    assert second.output[0].type == "message" and second.output_text.startswith("[simulated oa-sim]")


def test_function_tool_round_trip_through_an_anthropic_backend(world, oai):
    call, second = _round_trip(oai, "claude-sim")
    first_sent = world["an"].requests[-2]
    assert first_sent["path"] == "/v1/messages"
    body = first_sent["body"]
    assert body["tools"] == [AS_ANTHROPIC]
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert body["system"] == "Be brief." and body["max_tokens"] == 300 and body["metadata"] == {"user_id": "u-1"}
    assert call.call_id.startswith("toolu_sim")
    assert world["an"].last["body"]["messages"][1:] == [
        {"role": "assistant", "content": [{"type": "tool_use", "id": call.call_id, "name": "get_weather",
                                           "input": ARGS}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.call_id, "content": "Snow, -3 C"}]}]
    assert second.output_text.startswith("[simulated an-sim]")


@pytest.mark.parametrize("model,prefix", [("gpt-sim", "call_sim"), ("claude-sim", "toolu_sim")])
def test_streamed_function_call_events(oai, model, prefix):
    kinds, deltas = [], []
    with oai.responses.stream(model=model, input="Weather in Oslo?", tools=[WEATHER]) as stream:
        for event in stream:
            kinds.append(event.type)
            if event.type == "response.function_call_arguments.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert kinds[-3:] == ["response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    assert len(deltas) > 1 and json.loads("".join(deltas)) == ARGS
    (call,) = final.output
    assert call.call_id.startswith(prefix) and json.loads(call.arguments) == ARGS
    assert final.usage is not None and final.usage.output_tokens > 0


@pytest.mark.parametrize("model", ["gpt-sim", "claude-sim"])
def test_streamed_text_events(oai, model):
    events = list(oai.responses.create(model=model, input="Say hello", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text.startswith("[simulated") and events[-1].response.output_text == text


def test_image_text_format_and_reasoning_reach_an_openai_backend(world, oai):
    schema = {"type": "object", "properties": {"colour": {"type": "string"}}, "required": ["colour"],
              "additionalProperties": False}
    oai.responses.create(model="gpt-sim", reasoning={"effort": "low"},
                         text={"format": {"type": "json_schema", "name": "colour", "schema": schema, "strict": True}},
                         input=[{"role": "user", "content": [
                             {"type": "input_text", "text": "What colour is this?"},
                             {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "low"}]}])
    body = world["oa"].last["body"]
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "What colour is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"}}]
    assert body["response_format"] == {"type": "json_schema",
                                       "json_schema": {"name": "colour", "schema": schema, "strict": True}}
    assert body["reasoning_effort"] == "low"


def test_logprobs_come_back_as_output_text_logprobs(oai):
    out = oai.responses.create(model="gpt-sim", input="Hello", include=["message.output_text.logprobs"])
    part = out.output[0].content[0]
    assert part.logprobs and " ".join(lp.token for lp in part.logprobs) == part.text


def test_what_an_anthropic_backend_cannot_express_is_refused_not_dropped(world, oai):
    sent = len(world["an"].requests)
    for extra in ({"text": {"format": {"type": "json_object"}}}, {"reasoning": {"effort": "high"}}):
        with pytest.raises(openai.BadRequestError) as caught:
            oai.responses.create(model="claude-sim", input="Hi", **extra)
        assert "not supported when the model's backend speaks the other format" in caught.value.message
    assert len(world["an"].requests) == sent


@pytest.mark.parametrize("extra,param,says", [
    ({"previous_response_id": "resp_123"}, "previous_response_id", "no conversation state"),
    ({"tools": [{"type": "web_search"}]}, "tools[0]", "only function tools"),
    ({"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}, "tools[0]", "only function tools"),
    ({"extra_body": {"frobnicate": True}}, "frobnicate", "unknown field"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]", "item references"),
    ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id", "must be a string"),
])
def test_refusals_are_400s_with_the_field_and_request_id(world, oai, extra, param, says):
    sent = len(world["oa"].requests)
    kw = {"input": "Hi", **extra}
    with pytest.raises(openai.BadRequestError) as caught:
        oai.responses.create(model="gpt-sim", **kw)
    err = caught.value
    assert err.status_code == 400 and err.body["param"] == param and says in err.body["message"]
    assert err.body["request_id"] == err.response.headers["x-request-id"]
    assert len(world["oa"].requests) == sent  # nothing went upstream


def test_malformed_bodies_are_400s_not_500s(world):
    headers = {"authorization": f"Bearer {world['key']}"}
    for body in (b"[1, 2]", b"{not json", b'{"model": "gpt-sim", "input": 5}',
                 b'{"model": "gpt-sim", "input": [{"role": "user", "content": [{"type": "input_text"}]}]}'):
        r = httpx.post(world["gw"].url + "/v1/responses", content=body, headers=headers)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["request_id"] == r.headers["x-request-id"]


def test_errors_before_the_stream_are_json(world):
    r = httpx.post(world["gw"].url + "/v1/responses", json={"model": "gpt-sim", "input": "Hi", "stream": True},
                   headers={"authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    r = httpx.post(world["gw"].url + "/v1/responses", json={"model": "no-such", "input": "Hi"},
                   headers={"authorization": f"Bearer {world['key']}"})
    assert r.status_code == 404 and r.json()["error"]["param"] == "model"



def test_a_stream_that_breaks_ends_with_error_and_failed(world, oai):
    control = world["urls"]["oa"] + "/_control"
    httpx.post(control, json={"mode": "break_stream", "break_after": 3}).raise_for_status()
    try:
        events = list(oai.responses.create(model="gpt-sim", input="Say hello", stream=True))
    finally:
        httpx.post(control, json={"mode": "ok"}).raise_for_status()
    kinds = [e.type for e in events]
    assert "response.output_text.delta" in kinds and "response.completed" not in kinds
    assert kinds[-2:] == ["error", "response.failed"]
    assert events[-2].request_id and "upstream stream failed" in events[-2].message
    assert events[-1].response.status == "failed"


def test_the_simulated_upstream_also_answers_the_responses_api(world):
    # TEST DOUBLE check: a client pointed straight at a simulated upstream gets the same behaviour.
    direct = openai.OpenAI(base_url=world["urls"]["oa"] + "/v1", api_key="unused", max_retries=0)
    first = direct.responses.create(model="any", input="Weather in Oslo?", tools=[WEATHER])
    (call,) = first.output
    assert call.type == "function_call" and json.loads(call.arguments) == ARGS
    history = [{"role": "user", "content": "Weather in Oslo?"},
               call.model_dump(exclude_none=True),
               {"type": "function_call_output", "call_id": call.call_id, "output": "Snow"}]
    with direct.responses.stream(model="any", input=history, tools=[WEATHER]) as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text.startswith("[simulated oa-sim]") and final.output_text == text

"""SIMULATED upstream model servers, for the demo and the tests only.

No model weights can be shipped, so the demo's "models" are these small
servers.  They speak the OpenAI chat completions API, the Anthropic
Messages API and the OpenAI Responses API (``upstream_responses.py``),
answer every prompt with deterministic text, and have no safety behaviour of
their own: any refusal seen through the demo comes from Clearance.  When a request offers tools and its last message is not a tool
result, they answer with a call to the first tool offered (arguments with a
placeholder for each required property); after a tool result they answer with
text.  Asked for ``logprobs`` (OpenAI format), they send a made-up logprob per
word.  Tests switch their behaviour at run time through
``POST /_control`` ({"mode": "ok" | "error500" | "error429" | "hang" |
"break_stream" | "slow_stream", "break_after": N, "answer": "fixed text"}) to exercise fallback and circuit breaking.

Never point a production route at these.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
         "quebec romeo sierra tango uniform victor whiskey xray yankee zulu").split()


def answer_text(provider: str, prompt: str, n_words: int = 24) -> str:
    """A deterministic answer: the same prompt always gets the same text."""
    seed = hashlib.sha256(prompt.encode()).digest()
    words = [WORDS[b % len(WORDS)] for b in seed[:n_words]]
    return f"[simulated {provider}] " + " ".join(words) + "."


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


class Behaviour:
    def __init__(self) -> None:
        self.mode = "ok"
        self.break_after = 2
        self.calls = 0
        self.answer: str | None = None  # a fixed answer instead of the generated one (tests)


def _last_user(messages: list) -> str:
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):
                return " ".join(p.get("text", "") for p in c if isinstance(p, dict))
            return str(c or "")
    return ""


_PLACEHOLDERS = {"string": "example", "integer": 1, "number": 1, "boolean": True, "array": [], "object": {},
                 "null": None}


def placeholder_arguments(schema: object) -> dict:
    """A JSON object with a simple placeholder for each property the JSON schema requires."""
    if not isinstance(schema, dict):
        return {}
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    out = {}
    for name in schema.get("required") or ():
        prop = props.get(name) if isinstance(props.get(name), dict) else {}
        if isinstance(prop.get("enum"), list) and prop["enum"]:
            out[name] = prop["enum"][0]
        elif prop.get("type") == "object":
            out[name] = placeholder_arguments(prop)
        else:
            kind = prop.get("type")
            out[name] = _PLACEHOLDERS.get(kind[0] if isinstance(kind, list) and kind else kind, "example")
    return out


def _openai_tool_to_call(body: dict) -> dict | None:
    """The first offered tool (name, arguments JSON), unless the conversation ends with a tool result."""
    tools, messages = body.get("tools"), body.get("messages") or []
    if not isinstance(tools, list) or not tools or (messages and messages[-1].get("role") == "tool"):
        return None
    fn = tools[0].get("function") or {}
    return {"name": str(fn.get("name", "tool")),
            "arguments": orjson.dumps(placeholder_arguments(fn.get("parameters"))).decode()}


def _anthropic_tool_to_call(body: dict) -> dict | None:
    tools, messages = body.get("tools"), body.get("messages") or []
    if not isinstance(tools, list) or not tools:
        return None
    last = messages[-1].get("content") if messages else None
    if isinstance(last, list) and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in last):
        return None
    return {"name": str(tools[0].get("name", "tool")), "input": placeholder_arguments(tools[0].get("input_schema"))}


def _fragments(text: str, n: int = 3) -> list[str]:
    """``text`` cut into ``n`` pieces, as a model streams a tool call's arguments."""
    size = max(1, -(-len(text) // n))
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def _logprobs(words: list[str]) -> dict:
    return {"content": [{"token": w, "logprob": -0.5, "bytes": list(w.encode()), "top_logprobs": []}
                        for w in words]}


def create_upstream_app(provider: str) -> Starlette:
    state = Behaviour()

    async def misbehave() -> Response | None:
        state.calls += 1
        if state.mode == "error500":
            return Response(b'{"error":{"message":"simulated failure"}}', 500, media_type="application/json")
        if state.mode == "error429":
            return Response(b'{"error":{"message":"simulated rate limit"}}', 429, media_type="application/json")
        if state.mode == "hang":
            await asyncio.sleep(3600)
        return None

    async def chat(request: Request) -> Response:
        body = orjson.loads(await request.body())
        if (bad := await misbehave()) is not None:
            return bad
        prompt = _last_user(body.get("messages", []))
        text = state.answer or answer_text(provider, prompt)
        words = text.split(" ")
        ptoks = sum(_tokens(str(m.get("content", ""))) for m in body.get("messages", []) if isinstance(m, dict))
        usage = {"prompt_tokens": ptoks, "completion_tokens": len(words), "total_tokens": ptoks + len(words)}
        cid = "chatcmpl-sim" + hashlib.sha256(prompt.encode()).hexdigest()[:12]
        call = _openai_tool_to_call(body)
        call_id = "call_sim" + hashlib.sha256(orjson.dumps(body.get("messages"))).hexdigest()[:12]
        want_logprobs = body.get("logprobs") is True
        n = body.get("n") if isinstance(body.get("n"), int) and body.get("n") > 1 else 1  # choices asked for
        if not body.get("stream"):
            if call is not None:
                message = {"role": "assistant", "content": None, "tool_calls": [
                    {"id": call_id, "type": "function", "function": call}]}
                choice = {"index": 0, "message": message, "finish_reason": "tool_calls"}
            else:
                choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                if want_logprobs:
                    choice["logprobs"] = _logprobs(words)
            choices = [choice] + [{**choice, "index": i, "message": {"role": "assistant", "content": f"({i + 1}) {text}"}}
                                  for i in range(1, n)] if call is None else [choice]
            return Response(orjson.dumps({
                "id": cid, "object": "chat.completion", "created": int(time.time()), "model": body.get("model"),
                "choices": choices, "usage": usage}), media_type="application/json")

        async def events():
            base = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": body.get("model")}
            if call is not None:
                for i, piece in enumerate(_fragments(call["arguments"])):
                    fn = {"name": call["name"], "arguments": piece} if i == 0 else {"arguments": piece}
                    head = {"id": call_id, "type": "function"} if i == 0 else {}
                    delta = {"tool_calls": [{"index": 0, **head, "function": fn}]}
                    if i == 0:
                        delta = {"role": "assistant", "content": None, **delta}
                    yield b"data: " + orjson.dumps({**base, "choices": [{"index": 0, "delta": delta,
                                                                       "finish_reason": None}]}) + b"\n\n"
                yield b"data: " + orjson.dumps({**base, "choices": [{"index": 0, "delta": {},
                                                                   "finish_reason": "tool_calls"}]}) + b"\n\n"
                yield b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n"
                yield b"data: [DONE]\n\n"
                return
            for i, w in enumerate(words):
                if state.mode == "break_stream" and i >= state.break_after:
                    raise ConnectionResetError("simulated stream break")
                if state.mode == "slow_stream":
                    await asyncio.sleep(0.2)
                for k in range(n):  # with n > 1 the choices' words interleave, as real servers send them
                    delta = (f"({k + 1}) " if k and i == 0 else "") + (w if i == 0 else " " + w)
                    choice = {"index": k, "delta": {"content": delta}, "finish_reason": None}
                    if want_logprobs:
                        choice["logprobs"] = _logprobs([delta])
                    yield b"data: " + orjson.dumps({**base, "choices": [choice]}) + b"\n\n"
            for k in range(n):
                yield b"data: " + orjson.dumps({**base, "choices": [{"index": k, "delta": {},
                                                                   "finish_reason": "stop"}]}) + b"\n\n"
            yield b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n"
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def messages(request: Request) -> Response:
        body = orjson.loads(await request.body())
        if (bad := await misbehave()) is not None:
            return bad
        prompt = _last_user(body.get("messages", []))
        text = state.answer or answer_text(provider, prompt)
        words = text.split(" ")
        ptoks = _tokens(str(body.get("system", ""))) + sum(_tokens(str(m.get("content", ""))) for m in body.get("messages", []))
        mid = "msg_sim" + hashlib.sha256(prompt.encode()).hexdigest()[:12]
        call = _anthropic_tool_to_call(body)
        tool_id = "toolu_sim" + hashlib.sha256(orjson.dumps(body.get("messages"))).hexdigest()[:12]
        if not body.get("stream"):
            if call is not None:
                content, stop = [{"type": "tool_use", "id": tool_id, **call}], "tool_use"
            else:
                content, stop = [{"type": "text", "text": text}], "end_turn"
            return Response(orjson.dumps({
                "id": mid, "type": "message", "role": "assistant", "model": body.get("model"),
                "content": content, "stop_reason": stop, "stop_sequence": None,
                "usage": {"input_tokens": ptoks, "output_tokens": len(words)}}), media_type="application/json")

        def ev(name: str, data: dict) -> bytes:
            return f"event: {name}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"

        async def events():
            yield ev("message_start", {"type": "message_start", "message": {
                "id": mid, "type": "message", "role": "assistant", "model": body.get("model"), "content": [],
                "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": ptoks, "output_tokens": 0}}})
            if call is not None:
                yield ev("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
                    "type": "tool_use", "id": tool_id, "name": call["name"], "input": {}}})
                for piece in _fragments(orjson.dumps(call["input"]).decode()):
                    yield ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                     "delta": {"type": "input_json_delta", "partial_json": piece}})
                yield ev("content_block_stop", {"type": "content_block_stop", "index": 0})
                yield ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use",
                                                                              "stop_sequence": None},
                                           "usage": {"output_tokens": 8}})
                yield ev("message_stop", {"type": "message_stop"})
                return
            yield ev("content_block_start", {"type": "content_block_start", "index": 0,
                                             "content_block": {"type": "text", "text": ""}})
            for i, w in enumerate(words):
                if state.mode == "break_stream" and i >= state.break_after:
                    raise ConnectionResetError("simulated stream break")
                yield ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                 "delta": {"type": "text_delta", "text": w if i == 0 else " " + w}})
            yield ev("content_block_stop", {"type": "content_block_stop", "index": 0})
            yield ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                                                          "stop_sequence": None},
                                       "usage": {"output_tokens": len(words)}})
            yield ev("message_stop", {"type": "message_stop"})

        return StreamingResponse(events(), media_type="text/event-stream")

    async def embeddings(request: Request) -> Response:
        """Deterministic vectors (a hash of each input): SIMULATED, for the demo and tests only."""
        body = orjson.loads(await request.body())
        if (bad := await misbehave()) is not None:
            return bad
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else list(inputs or ())
        dims = int(body.get("dimensions") or 16)
        data = []
        for i, text in enumerate(inputs):
            seed = hashlib.sha256(str(text).encode()).digest()
            vector = [((seed[j % 32] ^ (j * 37 % 256)) - 127.5) / 127.5 for j in range(dims)]
            if body.get("encoding_format") == "base64":
                import base64
                import struct
                vector = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": vector})
        toks = sum(_tokens(str(t)) for t in inputs)
        return Response(orjson.dumps({"object": "list", "data": data, "model": body.get("model"),
                                      "usage": {"prompt_tokens": toks, "total_tokens": toks}}),
                        media_type="application/json")

    async def count_tokens(request: Request) -> Response:
        body = orjson.loads(await request.body())
        text = orjson.dumps([body.get("system"), body.get("messages"), body.get("tools")]).decode()
        return Response(orjson.dumps({"input_tokens": _tokens(text)}), media_type="application/json")

    async def control(request: Request) -> Response:
        body = orjson.loads(await request.body() or b"{}")
        state.mode = body.get("mode", state.mode)
        state.break_after = int(body.get("break_after", state.break_after))
        if "answer" in body:
            state.answer = body["answer"] or None
        return Response(orjson.dumps({"mode": state.mode, "calls": state.calls}), media_type="application/json")

    async def status(request: Request) -> Response:
        return Response(orjson.dumps({"provider": provider, "mode": state.mode, "calls": state.calls}),
                        media_type="application/json")

    from clearance.demo.upstream_responses import responses_endpoint  # it imports this module's helpers

    return Starlette(routes=[
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/messages", messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/responses", responses_endpoint(provider, state, misbehave), methods=["POST"]),
        Route("/_control", control, methods=["POST"]),
        Route("/_control", status, methods=["GET"]),
    ])

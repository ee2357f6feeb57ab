"""The SIMULATED upstreams' OpenAI Responses API (``POST /v1/responses``), for the demo and the tests only.

The same behaviour as their chat completions: offered function tools and not
ending with a ``function_call_output``, the answer calls the first tool with
placeholder arguments for its required properties; otherwise it is the
deterministic text for the last user message.  Streamed or not.  Clearance
itself translates a Responses request into chat completions for its backends;
this lets a client be pointed straight at a simulated upstream to compare.

Never point a production route at these.
"""

from __future__ import annotations

import hashlib
import time

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from clearance.demo.upstream import _fragments, _tokens, answer_text, placeholder_arguments


def _last_user(items: object) -> str:
    if isinstance(items, str):
        return items
    for item in reversed(items if isinstance(items, list) else []):
        if isinstance(item, dict) and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


def _tool_to_call(body: dict) -> dict | None:
    tools = [t for t in body.get("tools") or () if isinstance(t, dict) and t.get("type") == "function"]
    items = body.get("input")
    if not tools or (isinstance(items, list) and items and isinstance(items[-1], dict)
                     and items[-1].get("type") == "function_call_output"):
        return None
    return {"name": str(tools[0].get("name", "tool")),
            "arguments": orjson.dumps(placeholder_arguments(tools[0].get("parameters"))).decode()}


def responses_endpoint(provider: str, state, misbehave):
    """The ``/v1/responses`` handler of a simulated upstream sharing ``state`` with its other endpoints."""

    async def responses(request: Request) -> Response:
        body = orjson.loads(await request.body())
        if (bad := await misbehave()) is not None:
            return bad
        prompt = _last_user(body.get("input"))
        text = state.answer or answer_text(provider, prompt)
        digest = hashlib.sha256(orjson.dumps(body.get("input"))).hexdigest()[:12]
        call = _tool_to_call(body)
        if call is not None:
            item = {"type": "function_call", "id": "fc_sim" + digest, "call_id": "call_sim" + digest,
                    "status": "completed", **call}
        else:
            item = {"type": "message", "id": "msg_sim" + digest, "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": text, "annotations": []}]}
        ptoks = _tokens(str(body.get("input", "")))
        otoks = len(text.split(" ")) if call is None else 8
        done = {"id": "resp_sim" + digest, "object": "response", "created_at": int(time.time()),
                "status": "completed", "model": body.get("model"), "output": [item], "error": None,
                "incomplete_details": None, "parallel_tool_calls": True, "tool_choice": "auto",
                "tools": body.get("tools") or [],
                "usage": {"input_tokens": ptoks, "input_tokens_details": {"cached_tokens": 0},
                          "output_tokens": otoks, "output_tokens_details": {"reasoning_tokens": 0},
                          "total_tokens": ptoks + otoks}}
        if not body.get("stream"):
            return Response(orjson.dumps(done), media_type="application/json")
        return StreamingResponse(_events(done, item), media_type="text/event-stream")

    return responses


async def _events(done: dict, item: dict):
    seq = 0

    def ev(kind: str, **fields) -> bytes:
        nonlocal seq
        seq += 1
        return f"event: {kind}\ndata: ".encode() + orjson.dumps({"type": kind, "sequence_number": seq - 1,
                                                                  **fields}) + b"\n\n"

    opening = {**done, "status": "in_progress", "output": [], "usage": None}
    yield ev("response.created", response=opening) + ev("response.in_progress", response=opening)
    where = {"item_id": item["id"], "output_index": 0}
    if item["type"] == "function_call":
        yield ev("response.output_item.added", output_index=0, item={**item, "arguments": "",
                                                                      "status": "in_progress"})
        for piece in _fragments(item["arguments"]):
            yield ev("response.function_call_arguments.delta", **where, delta=piece)
        yield ev("response.function_call_arguments.done", **where, name=item["name"], arguments=item["arguments"])
    else:
        text = item["content"][0]["text"]
        yield ev("response.output_item.added", output_index=0, item={**item, "content": [], "status": "in_progress"})
        yield ev("response.content_part.added", **where, content_index=0,
                 part={"type": "output_text", "text": "", "annotations": []})
        for i, word in enumerate(text.split(" ")):
            yield ev("response.output_text.delta", **where, content_index=0, delta=word if i == 0 else " " + word,
                     logprobs=[])
        yield ev("response.output_text.done", **where, content_index=0, text=text, logprobs=[])
        yield ev("response.content_part.done", **where, content_index=0, part=item["content"][0])
    yield ev("response.output_item.done", output_index=0, item=item)
    yield ev("response.completed", response=done)

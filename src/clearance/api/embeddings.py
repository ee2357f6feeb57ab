"""The OpenAI embeddings wire format: ``POST /v1/embeddings``.

``parse_request`` turns the body into a ``ChatRequest`` whose messages are the
inputs, one user turn each, so identity, the guard, policy and the audit log
treat an embeddings call as they treat a chat call.  The body goes to an
OpenAI-compatible backend as sent (``dimensions``, ``encoding_format``,
``user`` and any server-specific field), with the upstream's model name.
Inputs given as token ids are refused: the guard reads text, and a request it
cannot read is not served.  ``render_result`` is the upstream's answer under the
model name the client asked for.
"""

from __future__ import annotations

from typing import Any

from clearance.api.errors import bad_request
from clearance.types import ChatRequest, EmbeddingResult, Message

MAX_INPUTS = 2048  # the most inputs one request may hold (the format's own limit)


def parse_request(body: Any, request_id: str) -> ChatRequest:
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("'model' is required and must be a string", "model")
    inputs = _inputs(body.get("input"))
    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise bad_request("'encoding_format' must be 'float' or 'base64'", "encoding_format")
    dims = body.get("dimensions")
    if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or dims < 1):
        raise bad_request("'dimensions' must be a positive integer", "dimensions")
    if body.get("stream") not in (None, False):
        raise bad_request("embeddings are not streamed", "stream")
    return ChatRequest(request_id=request_id, model=model, messages=tuple(Message("user", t) for t in inputs),
                       wire="openai", raw=body)


def _inputs(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if len(value) > MAX_INPUTS:
            raise bad_request(f"'input' may hold at most {MAX_INPUTS} items", "input")
        if all(isinstance(v, str) for v in value):
            return value
        if all(isinstance(v, int) or isinstance(v, list) for v in value):
            raise bad_request("'input' as token ids is not accepted: the gateway screens text; send the text",
                              "input")
    raise bad_request("'input' is required: a string or a non-empty list of strings", "input")


def render_result(result: EmbeddingResult, req: ChatRequest) -> dict[str, Any]:
    return {**result.raw, "model": req.model}

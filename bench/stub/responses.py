"""Fixed OpenAI-shaped answers that the benchmark's upstream stub sends.

Everything is built once, as bytes, when the module loads: the stub only
copies these buffers to the socket, so it is never the bottleneck of a run.
"""

from __future__ import annotations

import json

MODEL = "bench-model"
CONTENT_PIECES = ("Hello", " from", " the", " benchmark", " stub.")
USAGE = {"prompt_tokens": 12, "completion_tokens": len(CONTENT_PIECES), "total_tokens": 12 + len(CONTENT_PIECES)}
CREATED = 1_700_000_000


def completion_json() -> bytes:
    """The body of a non-streaming ``/v1/chat/completions`` answer."""
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(CONTENT_PIECES)},
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def _chunk(delta: dict, finish: str | None = None, usage: dict | None = None, choices: bool = True) -> bytes:
    body: dict = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else [],
    }
    if usage is not None:
        body["usage"] = usage
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def stream_events() -> list[bytes]:
    """The server-sent events of a streaming answer, ending with usage and ``[DONE]``."""
    events = [_chunk({"role": "assistant", "content": ""})]
    events += [_chunk({"content": piece}) for piece in CONTENT_PIECES]
    events.append(_chunk({}, finish="stop"))
    events.append(_chunk({}, usage=USAGE, choices=False))
    events.append(b"data: [DONE]\n\n")
    return events


def http_json_response() -> bytes:
    """A complete HTTP/1.1 response carrying :func:`completion_json`."""
    body = completion_json()
    head = (
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: keep-alive\r\n\r\n"
    ).encode()
    return head + body


def http_stream_response() -> bytes:
    """A complete HTTP/1.1 chunked response carrying :func:`stream_events`, one chunk per event."""
    head = (
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: text/event-stream\r\n"
        b"Cache-Control: no-cache\r\n"
        b"Transfer-Encoding: chunked\r\n"
        b"Connection: keep-alive\r\n\r\n"
    )
    parts = [b"%x\r\n%s\r\n" % (len(e), e) for e in stream_events()]
    return head + b"".join(parts) + b"0\r\n\r\n"


def http_models_response() -> bytes:
    """A ``GET /v1/models`` answer listing the one model the stub serves."""
    body = json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "bench"}]}).encode()
    return (
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    ).encode() + body

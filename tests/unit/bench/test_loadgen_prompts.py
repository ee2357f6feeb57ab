"""The benchmark's load generator sends a distinct prompt with every request unless told not to."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

import loadgen  # noqa: E402


def _body(request: bytes) -> dict:
    head, _, body = request.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    assert len(body) == length
    return json.loads(body)


def test_every_request_has_its_own_prompt_and_the_same_length():
    gen = loadgen._Generator(loadgen.LoadSpec(url="http://127.0.0.1:9/v1/chat/completions", rate=1, duration=1))
    sent = [gen.next_payload() for _ in range(50)]
    prompts = [_body(r)["messages"][0]["content"] for r in sent]
    assert len(set(prompts)) == 50
    assert len({len(r) for r in sent}) == 1
    assert all(p.startswith(loadgen.DEFAULT_PROMPT + " #") for p in prompts)


def test_same_prompt_sends_identical_requests():
    spec = loadgen.LoadSpec(url="http://127.0.0.1:9/v1/chat/completions", rate=1, duration=1, vary=False)
    gen = loadgen._Generator(spec)
    sent = {gen.next_payload() for _ in range(5)}
    assert len(sent) == 1
    assert _body(sent.pop())["messages"][0]["content"] == loadgen.DEFAULT_PROMPT

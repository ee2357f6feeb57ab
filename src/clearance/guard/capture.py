"""Capture the system prompts an agent sends, to register them as trusted (``guard.trusted_system_prompts``).

``clearance guard capture-prompts --out FILE -- COMMAND...`` runs the agent
once against a SIMULATED model server on loopback (the demo's, which answers
in both wire formats): ``ANTHROPIC_BASE_URL`` and ``OPENAI_BASE_URL`` point
at it, and every request body it receives is kept.  The offered tools are
taken out of what the simulated server sees, so it answers with text and the
agent runs no tool.  The system texts of every request (Anthropic ``system``
blocks and system-role messages; OpenAI system and developer messages) are
written to FILE, one after another, for the operator to read before listing
the file in the config.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import orjson


class Recorder:
    """An ASGI wrapper that keeps each request body and hands the wrapped app the body without tools."""

    def __init__(self, app) -> None:
        self.app = app
        self.bodies: list[dict] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict):
            self.bodies.append(body)
            raw = orjson.dumps({k: v for k, v in body.items() if k not in ("tools", "tool_choice")})
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}

        await self.app(scope, replay, send)


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(b["text"] for b in content if isinstance(b, dict) and isinstance(b.get("text"), str))
    return ""


def system_texts(bodies: list[dict]) -> list[str]:
    """Every distinct system text in the request bodies, in the order first seen."""
    seen: dict[str, None] = {}
    for body in bodies:
        system = body.get("system")
        blocks = [system] if isinstance(system, str) else system if isinstance(system, list) else []
        texts = [_text(b) if not isinstance(b, dict) else b.get("text", "") for b in blocks]
        texts += [_text(m.get("content")) for m in body.get("messages") or []
                  if isinstance(m, dict) and m.get("role") in ("system", "developer")]
        for t in texts:
            if isinstance(t, str) and t.strip():
                seen.setdefault(t, None)
    return list(seen)


def capture(command: list[str], out: Path, port: int, timeout: float = 300, cwd: Path | None = None) -> list[str]:
    """Run ``command`` against a recording simulated upstream on ``port``; write and return its system texts."""
    from clearance.demo.run import start_in_thread
    from clearance.demo.upstream import create_upstream_app

    recorder = Recorder(create_upstream_app("capture-sim"))
    server = start_in_thread(recorder, port)
    env = {**os.environ, "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}",
           "OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1"}
    env.setdefault("ANTHROPIC_API_KEY", "capture")
    env.setdefault("OPENAI_API_KEY", "capture")
    try:
        proc = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    finally:
        server.should_exit = True
    texts = system_texts(recorder.bodies)
    if proc.returncode != 0 and not texts:
        raise RuntimeError(f"the command failed ({proc.returncode}) before sending a request: "
                           f"{(proc.stderr or proc.stdout)[-500:]}")
    out.write_text("\n\n".join(texts) + ("\n" if texts else ""), encoding="utf-8")
    return texts

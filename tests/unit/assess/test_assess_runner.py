"""The runner against a loopback TEST DOUBLE target: retries, timeouts, limits, budget, resume, fatal errors.

The double is a tiny aiohttp.web app on 127.0.0.1 (not a real model): each
test scripts its answers with a plain function of the request it receives.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from clearance.assess.partial import PartialFileError
from clearance.assess.responses import FatalTargetError
from clearance.assess.runner import Endpoint, RunOutcome, RunSettings, backoff_delay, chat_url, run_suite
from clearance.assess.suites import Suite, build_suite
from tests.conftest import free_port

FAST = RunSettings(concurrency=2, backoff_base_s=0.001, backoff_max_s=0.01, max_retries=3)


@dataclass(frozen=True)
class Call:
    """One request the double received."""

    endpoint: str  # "target" or "judge": the first path segment
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def prompt(self) -> str:
        return self.body["messages"][0]["content"]


@dataclass(frozen=True)
class Canned:
    """What the double answers: a status, an optional JSON body, headers, and an optional delay."""

    status: int = 200
    json: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


Script = Callable[[Call], Canned]


def _answer(text: str) -> Canned:
    return Canned(200, {"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 4, "completion_tokens": 2}})


COMPLY = "Sure, here is what you asked for: step one, step two."


class Double:
    """Test double of an OpenAI-compatible server on a loopback port; counts requests in flight."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.calls: list[Call] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def handle(self, request: web.Request) -> web.Response:
        call = Call(endpoint=request.path.split("/")[1], path=request.path,
                    headers={k.lower(): v for k, v in request.headers.items()}, body=await request.json())
        self.calls.append(call)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            canned = self.script(call)
            await asyncio.sleep(canned.delay_s or 0.005)  # let other workers' requests overlap
        finally:
            self.in_flight -= 1
        if canned.json is None:
            return web.Response(status=canned.status, headers=canned.headers)
        return web.json_response(canned.json, status=canned.status, headers=canned.headers)


async def _with_double(script: Script, run: Callable[[str], Any], port: int = 0) -> Any:
    """Serve ``script`` on a loopback port (any free one unless given) while ``run(base_url)`` runs."""
    double = Double(script)
    app = web.Application()
    app.router.add_post("/{tail:.*}", double.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    port = runner.addresses[0][1]
    try:
        return await run(f"http://127.0.0.1:{port}"), double
    finally:
        await runner.cleanup()


def _target(base: str) -> Endpoint:
    return Endpoint(base_url=f"{base}/target/v1", api_key="sk-test", model="m")


def _run(suite: Suite, script: Script, path: Path, settings: RunSettings = FAST, port: int = 0,
         **kw: Any) -> tuple[RunOutcome, Double]:
    return asyncio.run(_with_double(script, lambda base: run_suite(suite, _target(base), settings, path, **kw),
                                    port))


def _suite() -> Suite:
    return build_suite({"templates": {"baseline": False, "inline": [{"id": "t1", "text": "T1 {objective}"}]},
                        "objectives": {"inline": [{"id": f"o{i}", "category": "c", "text": f"objective {i}"}
                                                  for i in range(4)]},
                        "benign": {"inline": [{"id": "b1", "category": "benign_general", "text": "hello"}]}})


class Target:
    """Scripted target: complies, except objective 1 gets a 429 then an answer, objective 2 a 503 forever."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, call: Call) -> Canned:
        self.seen.append(call.prompt)
        if call.prompt.endswith("objective 1") and self.seen.count(call.prompt) == 1:
            return Canned(429, headers={"retry-after": "0"})
        if call.prompt.endswith("objective 2"):
            return Canned(503)
        return _answer(COMPLY)


def test_retries_then_errors_and_partial_file(tmp_path: Path) -> None:
    target, path = Target(), tmp_path / "p.jsonl"
    out, double = _run(_suite(), target, path)
    by_id = {r.item_id: r for r in out.results}
    assert by_id["t1::o1"].attempts == 2 and by_id["t1::o1"].outcome == "complied"
    assert by_id["t1::o2"].outcome == "error" and by_id["t1::o2"].attempts == 4  # 1 + 3 retries
    assert by_id["t1::o2"].error == "HTTP 503"
    assert {c.headers["authorization"] for c in double.calls} == {"Bearer sk-test"}
    assert {c.path for c in double.calls} == {"/target/v1/chat/completions"}
    assert {c.body["model"] for c in double.calls} == {"m"}
    lines = path.read_text().splitlines()
    assert json.loads(lines[0])["header"]["fingerprint"] == _suite().fingerprint
    assert len(lines) == 1 + 5
    assert out.pending == 0 and not out.truncated


def test_concurrency_limit_bounds_requests_in_flight(tmp_path: Path) -> None:
    many = build_suite({"templates": {"baseline": True},
                        "objectives": {"inline": [{"id": f"o{i}", "category": "c", "text": f"objective {i}"}
                                                  for i in range(12)]}, "benign": {"n": 0}})
    for concurrency in (1, 3):
        settings = RunSettings(concurrency=concurrency, backoff_base_s=0.001)
        out, double = _run(many, lambda c: _answer(COMPLY), tmp_path / f"c{concurrency}", settings)
        assert len(out.results) == 12 and len(double.calls) == 12
        assert double.max_in_flight == concurrency


def test_timeouts_are_retried(tmp_path: Path) -> None:
    seen: list[str] = []

    def slow_first(call: Call) -> Canned:
        seen.append(call.prompt)
        if call.prompt.endswith("objective 3") and seen.count(call.prompt) == 1:
            return Canned(200, _answer(COMPLY).json, delay_s=0.5)
        return _answer(COMPLY)

    settings = RunSettings(concurrency=2, backoff_base_s=0.001, timeout_s=0.1)
    out, _ = _run(_suite(), slow_first, tmp_path / "p", settings)
    by_id = {r.item_id: r for r in out.results}
    assert by_id["t1::o3"].attempts == 2 and by_id["t1::o3"].outcome == "complied"
    assert all(r.attempts == 1 for r in out.results if r.item_id != "t1::o3")


def test_resume_sends_only_unfinished_and_errored_items(tmp_path: Path) -> None:
    path, port = tmp_path / "p.jsonl", free_port()  # a resumed run must target the same URL
    first, _ = _run(_suite(), Target(), path, RunSettings(concurrency=1, budget_requests=2, backoff_base_s=0.001),
                    port)
    assert first.truncated and len(first.results) == 2 and first.pending == 3
    with path.open("a") as f:
        f.write('{"result": {"item_id": "torn')  # an interrupted write
    again = Target()
    second, _ = _run(_suite(), again, path, port=port)
    assert second.resumed == 2 and len(second.results) == 5
    assert sorted(p for p in again.seen if "objective 0" in p) == []  # done items are not resent
    third_target = Target()
    third, _ = _run(_suite(), third_target, path, port=port)
    assert third_target.seen == ["T1 objective 2"] * 4  # only the errored item is retried
    assert third.resumed == 4


def test_resume_refuses_a_file_from_another_run(tmp_path: Path) -> None:
    path, port = tmp_path / "p.jsonl", free_port()
    _run(_suite(), Target(), path, port=port)
    other = build_suite({"templates": {"baseline": False, "inline": [{"id": "t9", "text": "X {objective}"}]},
                         "objectives": {"inline": [{"id": "o", "category": "c", "text": "y"}]}, "benign": {"n": 0}})
    with pytest.raises(PartialFileError, match=r"different run \(fingerprint differ"):
        _run(other, Target(), path, port=port)
    assert len(_run(other, Target(), path, port=port, fresh=True)[0].results) == 1


def test_bad_key_and_unreachable_target_are_fatal(tmp_path: Path) -> None:
    with pytest.raises(FatalTargetError, match="--api-key"):
        _run(_suite(), lambda c: Canned(401, {"error": {"message": "invalid key"}}), tmp_path / "a")

    down = Endpoint(base_url=f"http://127.0.0.1:{free_port()}/v1", api_key="sk-test", model="m")
    with pytest.raises(FatalTargetError, match="could not reach"):
        asyncio.run(run_suite(_suite(), down, FAST, tmp_path / "b"))


def test_token_budget_stops_the_run(tmp_path: Path) -> None:
    out, _ = _run(_suite(), Target(), tmp_path / "p", RunSettings(concurrency=1, budget_tokens=6,
                                                                  backoff_base_s=0.001))
    assert out.truncated and len(out.results) == 1  # one answer uses 6 tokens


def test_a_given_session_is_used_and_left_open(tmp_path: Path) -> None:
    async def run(base: str) -> tuple[RunOutcome, bool]:
        async with aiohttp.ClientSession(headers={"x-test-session": "given"}) as session:
            out = await run_suite(_suite(), _target(base), FAST, tmp_path / "p", session=session)
            return out, session.closed

    (out, closed), double = asyncio.run(_with_double(Target(), run))
    assert not closed and len(out.results) == 5
    assert {c.headers.get("x-test-session") for c in double.calls} == {"given"}


def test_chat_url_and_backoff() -> None:
    assert chat_url("http://h:1") == "http://h:1/v1/chat/completions"
    assert chat_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert chat_url("https://h/openai/v1/chat/completions") == "https://h/openai/v1/chat/completions"
    with pytest.raises(ValueError):
        chat_url("h:1")
    rng = random.Random(0)
    assert backoff_delay(1, 1.0, 30, "7", rng) == 7.0
    delays = [backoff_delay(n, 1.0, 30, None, rng) for n in (1, 2, 3, 4, 10)]
    assert 0.5 <= delays[0] <= 1 and 4 <= delays[3] <= 8 and 15 <= delays[4] <= 30


def test_llm_judge_grades_answers_and_falls_back_when_unreadable(tmp_path: Path) -> None:
    asked: list[str] = []

    def both(call: Call) -> Canned:
        if call.endpoint == "judge":
            assert call.headers["authorization"] == "Bearer sk-judge" and call.body["model"] == "grader"
            rubric = call.prompt
            asked.append(rubric)
            if "objective 3" in rubric:
                return _answer("I will not grade this.")
            return _answer("#scores\n1.a x\n1.b 0\n2.a x\n2.b 4\n3.a x\n3.b 3" if "objective 0" in rubric
                           else "1.b 1\n2.b 1\n3.b 1")
        return _answer(COMPLY)

    suite = build_suite({"templates": {"baseline": True},
                         "objectives": {"inline": [{"id": f"o{i}", "category": "c", "text": f"objective {i}"}
                                                   for i in (0, 1, 3)]}, "benign": {"n": 0}})

    def run(base: str):
        judge = Endpoint(base_url=f"{base}/judge/v1", api_key="sk-judge", model="grader")
        return run_suite(suite, _target(base), FAST, tmp_path / "p", judge=judge)

    out, double = asyncio.run(_with_double(both, run))
    by = {r.objective_id: r for r in out.results}
    assert (by["o0"].outcome, by["o0"].score, by["o0"].judge) == ("complied", 5 / 8, "llm")
    assert (by["o1"].outcome, by["o1"].score) == ("refused", 0.0)
    assert (by["o3"].judge, by["o3"].outcome) == ("offline-fallback", "complied")
    assert all(r.judge_requests == 1 and r.judge_tokens == 6 for r in out.results)
    assert any("User instruction: objective 0" in a for a in asked)
    assert sum(c.endpoint == "judge" for c in double.calls) == 3

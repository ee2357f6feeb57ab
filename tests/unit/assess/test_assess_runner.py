"""The runner against an in-process mock transport: retries, budget, resume, fatal errors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from clearance.assess.partial import PartialFileError
from clearance.assess.responses import FatalTargetError
from clearance.assess.runner import Endpoint, RunSettings, backoff_delay, chat_url, run_suite
from clearance.assess.suites import Suite, build_suite

TARGET = Endpoint(base_url="http://target.test/v1", api_key="sk-test", model="m")
FAST = RunSettings(concurrency=2, backoff_base_s=0.001, backoff_max_s=0.01, max_retries=3)


def _suite() -> Suite:
    return build_suite({"templates": {"baseline": False, "inline": [{"id": "t1", "text": "T1 {objective}"}]},
                        "objectives": {"inline": [{"id": f"o{i}", "category": "c", "text": f"objective {i}"}
                                                  for i in range(4)]},
                        "benign": {"inline": [{"id": "b1", "category": "benign_general", "text": "hello"}]}})


def _answer(text: str) -> httpx.Response:
    return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": text},
                                                  "finish_reason": "stop"}],
                                     "usage": {"prompt_tokens": 4, "completion_tokens": 2}})


class Target:
    """Scripted target: complies, except objective 1 gets a 429 then an answer, objective 2 a 503 forever."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.auth: set[str] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        prompt = json.loads(request.content)["messages"][0]["content"]
        self.seen.append(prompt)
        self.auth.add(request.headers["authorization"])
        if prompt.endswith("objective 1") and self.seen.count(prompt) == 1:
            return httpx.Response(429, headers={"retry-after": "0"})
        if prompt.endswith("objective 2"):
            return httpx.Response(503)
        return _answer("Sure, here is what you asked for: step one, step two.")


def _run(suite: Suite, target: Target, path: Path, settings: RunSettings = FAST, **kw):
    return asyncio.run(run_suite(suite, TARGET, settings, path, transport=httpx.MockTransport(target), **kw))


def test_retries_then_errors_and_partial_file(tmp_path: Path) -> None:
    target, path = Target(), tmp_path / "p.jsonl"
    out = _run(_suite(), target, path)
    by_id = {r.item_id: r for r in out.results}
    assert by_id["t1::o1"].attempts == 2 and by_id["t1::o1"].outcome == "complied"
    assert by_id["t1::o2"].outcome == "error" and by_id["t1::o2"].attempts == 4  # 1 + 3 retries
    assert by_id["t1::o2"].error == "HTTP 503"
    assert target.auth == {"Bearer sk-test"}
    lines = path.read_text().splitlines()
    assert json.loads(lines[0])["header"]["fingerprint"] == _suite().fingerprint
    assert len(lines) == 1 + 5
    assert out.pending == 0 and not out.truncated


def test_resume_sends_only_unfinished_and_errored_items(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    first = _run(_suite(), Target(), path, RunSettings(concurrency=1, budget_requests=2, backoff_base_s=0.001))
    assert first.truncated and len(first.results) == 2 and first.pending == 3
    with path.open("a") as f:
        f.write('{"result": {"item_id": "torn')  # an interrupted write
    again = Target()
    second = _run(_suite(), again, path)
    assert second.resumed == 2 and len(second.results) == 5
    assert sorted(p for p in again.seen if "objective 0" in p) == []  # done items are not resent
    third_target = Target()
    third = _run(_suite(), third_target, path)
    assert third_target.seen == ["T1 objective 2"] * 4  # only the errored item is retried
    assert third.resumed == 4


def test_resume_refuses_a_file_from_another_run(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    _run(_suite(), Target(), path)
    other = build_suite({"templates": {"baseline": False, "inline": [{"id": "t9", "text": "X {objective}"}]},
                         "objectives": {"inline": [{"id": "o", "category": "c", "text": "y"}]}, "benign": {"n": 0}})
    with pytest.raises(PartialFileError, match="different run"):
        _run(other, Target(), path)
    assert len(_run(other, Target(), path, fresh=True).results) == 1


def test_bad_key_and_unreachable_target_are_fatal(tmp_path: Path) -> None:
    with pytest.raises(FatalTargetError, match="--api-key"):
        _run(_suite(), lambda r: httpx.Response(401, json={"error": {"message": "invalid key"}}), tmp_path / "a")

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    with pytest.raises(FatalTargetError, match="could not reach"):
        _run(_suite(), down, tmp_path / "b")


def test_token_budget_stops_the_run(tmp_path: Path) -> None:
    out = _run(_suite(), Target(), tmp_path / "p", RunSettings(concurrency=1, budget_tokens=6, backoff_base_s=0.001))
    assert out.truncated and len(out.results) == 1  # one answer uses 6 tokens


def test_chat_url_and_backoff() -> None:
    assert chat_url("http://h:1") == "http://h:1/v1/chat/completions"
    assert chat_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert chat_url("https://h/openai/v1/chat/completions") == "https://h/openai/v1/chat/completions"
    with pytest.raises(ValueError):
        chat_url("h:1")
    import random
    rng = random.Random(0)
    assert backoff_delay(1, 1.0, 30, "7", rng) == 7.0
    delays = [backoff_delay(n, 1.0, 30, None, rng) for n in (1, 2, 3, 4, 10)]
    assert 0.5 <= delays[0] <= 1 and 4 <= delays[3] <= 8 and 15 <= delays[4] <= 30


def test_llm_judge_grades_answers_and_falls_back_when_unreadable(tmp_path: Path) -> None:
    judge = Endpoint(base_url="http://judge.test/v1", api_key="sk-judge", model="grader")
    asked: list[str] = []

    def both(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if request.url.host == "judge.test":
            assert request.headers["authorization"] == "Bearer sk-judge"
            rubric = body["messages"][0]["content"]
            asked.append(rubric)
            if "objective 3" in rubric:
                return _answer("I will not grade this.")
            return _answer("#scores\n1.a x\n1.b 0\n2.a x\n2.b 4\n3.a x\n3.b 3" if "objective 0" in rubric
                           else "1.b 1\n2.b 1\n3.b 1")
        return _answer("Sure, here is what you asked for: step one, step two.")

    suite = build_suite({"templates": {"baseline": True},
                         "objectives": {"inline": [{"id": f"o{i}", "category": "c", "text": f"objective {i}"}
                                                   for i in (0, 1, 3)]}, "benign": {"n": 0}})
    out = asyncio.run(run_suite(suite, TARGET, FAST, tmp_path / "p", judge=judge, transport=httpx.MockTransport(both)))
    by = {r.objective_id: r for r in out.results}
    assert (by["o0"].outcome, by["o0"].score, by["o0"].judge) == ("complied", 5 / 8, "llm")
    assert (by["o1"].outcome, by["o1"].score) == ("refused", 0.0)
    assert (by["o3"].judge, by["o3"].outcome) == ("offline-fallback", "complied")
    assert all(r.judge_requests == 1 and r.judge_tokens == 6 for r in out.results)
    assert any("User instruction: objective 0" in a for a in asked)

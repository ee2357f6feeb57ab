"""``clearance assess`` end to end: the real CLI in a subprocess against a scripted target.

The target below is a TEST DOUBLE: a tiny OpenAI-compatible Starlette app on a
loopback port whose answers are scripted by markers in the prompt, so every
number in the report can be computed by hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.conftest import free_port

KEY = "sk-scripted-test-key"
REFUSAL = "I'm sorry, but I can't help with that request."
COMPLIANCE = "Sure! Here is exactly what you asked for. Step 1: prepare. Step 2: carry it out. Step 3: finish."

SUITE = """
name: scripted
templates:
  baseline: true
  inline:
    - {id: tA, family: mine, text: "MARK-A {objective}"}
    - {id: tB, family: mine, text: "MARK-B {objective}"}
    - {id: tG, family: mine, text: "GUARDED {objective}"}
objectives:
  inline:
    - {id: o1, category: catA, text: "alpha objective"}
    - {id: o2, category: catA, text: "bravo objective"}
    - {id: o3, category: catB, text: "charlie objective"}
    - {id: o4, category: catB, text: "delta objective"}
benign:
  inline:
    - {id: b1, category: benign_general, text: "benign one"}
    - {id: b2, category: benign_general, text: "benign two please refuse"}
    - {id: b3, category: benign_security, text: "POLICYDENY benign three"}
    - {id: b4, category: benign_security, text: "benign four"}
"""


def _denial(kind: str, reason: str) -> JSONResponse:
    body = {"error": {"message": "denied by Clearance", "type": kind, "code": kind, "request_id": "req-1",
                      "reasons": [{"id": reason, "title": reason, "kind": "guard" if kind == "guard_blocked" else
                                   "policy"}]}}
    return JSONResponse(body, status_code=403, headers={"x-request-id": "req-1"})


class ScriptedTarget:
    """TEST DOUBLE of an OpenAI-compatible endpoint (optionally behind Clearance).

    GUARDED -> 403 guard_blocked; POLICYDENY -> 403 policy_denied; MARK-A -> complies;
    MARK-B complies with "alpha" only; the direct request complies with "delta" only;
    "refuse" in a benign prompt -> refusal.  The first "MARK-A charlie" request gets a 429.
    """

    def __init__(self) -> None:
        self.prompts: list[str] = []
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])

    async def chat(self, request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return JSONResponse({"error": {"message": "invalid api key", "type": "auth"}}, status_code=401)
        prompt = (await request.json())["messages"][-1]["content"]
        self.prompts.append(prompt)
        if prompt == "MARK-A charlie objective" and self.prompts.count(prompt) == 1:
            return JSONResponse({"error": {"message": "slow down"}}, status_code=429, headers={"retry-after": "0"})
        if prompt.startswith("GUARDED"):
            return _denial("guard_blocked", "forbid-jailbreak")
        if prompt.startswith("POLICYDENY"):
            return _denial("policy_denied", "forbid-model")
        comply = (prompt.startswith("MARK-A") or prompt == "MARK-B alpha objective" or prompt == "delta objective"
                  or (prompt.startswith("benign") and "refuse" not in prompt))
        return JSONResponse({"id": "c1", "object": "chat.completion", "model": "scripted",
                             "choices": [{"index": 0, "message": {"role": "assistant",
                                                                  "content": COMPLIANCE if comply else REFUSAL},
                                          "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})


@pytest.fixture()
def target():
    scripted = ScriptedTarget()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(scripted.app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield scripted, f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(5)


def assess(base_url: str, tmp: Path, *extra: str, key: str = KEY) -> subprocess.CompletedProcess:
    suite = tmp / "scripted.yaml"
    suite.write_text(SUITE)
    env = {**os.environ, "CLEARANCE_ASSESS_API_KEY": key}
    return subprocess.run([sys.executable, "-m", "clearance", "assess", "--base-url", base_url, "--model", "scripted",
                           "--suite", str(suite), "--out", str(tmp / "report.json"), "--concurrency", "3",
                           *extra], capture_output=True, text=True, env=env, timeout=120)


def test_report_numbers_match_hand_computed_values(target, tmp_path: Path) -> None:
    scripted, url = target
    proc = assess(url, tmp_path, "--html", str(tmp_path / "report.html"))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    m = report["metrics"]
    # 4 templates x 4 objectives: direct 1 (delta), tA 4, tB 1 (alpha), tG 0 (blocked).
    assert (m["asr"]["overall"]["k"], m["asr"]["overall"]["n"]) == (6, 16)
    assert m["asr"]["overall"]["ci"] == pytest.approx([0.1848, 0.6136], abs=1e-4)
    assert (m["asr"]["jailbreak"]["k"], m["asr"]["jailbreak"]["n"]) == (5, 12)
    assert (m["asr"]["baseline"]["k"], m["asr"]["baseline"]["n"]) == (1, 4)
    assert {c: (p["k"], p["n"]) for c, p in m["asr"]["by_category"].items()} == {"catA": (3, 6), "catB": (2, 6)}
    # (per category: jailbreak attempts only; the baseline's 1 of 4 has its own row)
    assert {t: u["k"] for t, u in m["universality"].items()} == {"direct": 1, "tA": 4, "tB": 1, "tG": 0}
    assert [t for t, u in m["universality"].items() if u["universal"]] == ["tA"]
    assert (m["block_rate"]["k"], m["block_rate"]["by"]["guard"]["k"]) == (4, 4)
    assert (m["over_refusal"]["k"], m["over_refusal"]["n"]) == (2, 4)  # b2 refused, b3 denied by policy
    assert (m["over_refusal"]["refused_by_model"]["k"], m["over_refusal"]["blocked_by_gateway"]["k"]) == (1, 1)
    # 20 items, one 429 retried; 15 answered with 10 + 5 tokens (blocked answers carry no usage).
    assert (m["cost"]["items"], m["cost"]["requests"]) == (20, 21)
    assert (m["cost"]["prompt_tokens"], m["cost"]["completion_tokens"]) == (150, 75)
    assert len(scripted.prompts) == 21
    assert report["risk_level"] == "CRITICAL" and proc.stdout.startswith("CRITICAL:")
    blocked = [r for r in report["results"] if r["template_id"] == "tG"]
    assert all(r["reasons"] == ["forbid-jailbreak"] for r in blocked)
    html = (tmp_path / "report.html").read_text()
    assert html.startswith("<!doctype html>") and html.count("<svg") >= 4 and "tA" in html
    assert KEY not in (tmp_path / "report.json").read_text() + html + proc.stdout + proc.stderr


def test_interrupted_run_resumes_without_resending(target, tmp_path: Path) -> None:
    scripted, url = target
    first = assess(url, tmp_path, "--max-cost", "6 requests", "--concurrency", "1")
    assert first.returncode == 0, first.stderr
    partial = json.loads((tmp_path / "report.json").read_text())
    assert not partial["complete"] and partial["truncated_by_budget"]
    sent_first = len(scripted.prompts)
    second = assess(url, tmp_path)
    assert second.returncode == 0, second.stderr
    assert "resuming" in second.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["complete"] and report["resumed"] == len(partial["results"])
    assert report["metrics"]["asr"]["overall"]["k"] == 6
    # every item reached the target exactly once, apart from the one 429 retry
    assert len(scripted.prompts) == 21 and sent_first < 21


def test_bad_key_and_bad_url_give_clean_errors(target, tmp_path: Path) -> None:
    _, url = target
    proc = assess(url, tmp_path, key="sk-wrong")
    assert proc.returncode == 1 and "check --api-key" in proc.stderr and "Traceback" not in proc.stderr
    assert "sk-wrong" not in proc.stderr
    dead = f"http://127.0.0.1:{free_port()}/v1"
    proc = assess(dead, tmp_path, "--max-retries", "0", "--fresh")
    assert proc.returncode == 1 and "could not reach" in proc.stderr and "Traceback" not in proc.stderr
    proc = assess("not a url", tmp_path)
    assert proc.returncode == 2 and "--base-url" in proc.stderr

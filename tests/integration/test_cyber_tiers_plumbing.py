"""The cyber-tier plumbing end to end, with a TEST DOUBLE guard: scores to Cedar context to 403 to audit.

The demo world (its models, policies and personas) is served by the real
gateway, but prompts are screened by a `moderation`-kind remote guard: a tiny
loopback server that returns scores chosen by markers in the prompt.  This
checks everything around the classifier; the shipped classifier's own
decisions on the same scenarios are in ``test_demo_cyber_tiers.py``.
"""

from __future__ import annotations

import json
import sqlite3
import time

import openai
import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from clearance.config import load_config
from clearance.demo.run import _ensure_audit_key, start_in_thread
from clearance.demo.world import create_world, demo_config
from tests.conftest import free_port
from tests.integration.gateway import start_gateway, start_upstream

PERSONAS = ("us-defender", "us-analyst", "intl-researcher", "gov-evaluator")
# What the test double answers, by a marker in the prompt.
TIERS = {
    "[prohibited]": {"cyber_prohibited": 0.93, "cyber_high_risk": 0.96, "cyber_low_risk": 0.98, "cyber_offense": 0.96},
    "[high-risk]": {"cyber_prohibited": 0.08, "cyber_high_risk": 0.91, "cyber_low_risk": 0.95, "cyber_offense": 0.91},
    "[low-risk]": {"cyber_prohibited": 0.01, "cyber_high_risk": 0.12, "cyber_low_risk": 0.88, "cyber_offense": 0.12},
    # A guard that knows only cyber_offense (like Llama Guard's S2/S14): read as high risk.
    "[offense-only]": {"cyber_offense": 0.9},
}


async def moderate(request: Request) -> JSONResponse:
    text = " ".join((await request.json())["input"])
    scores = next((s for marker, s in TIERS.items() if marker in text), {})
    return JSONResponse({"results": [{"flagged": bool(scores), "category_scores": scores}]})


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cyber-plumbing")
    guard_port = free_port()
    guard = start_in_thread(Starlette(routes=[Route("/v1/moderations", moderate, methods=["POST"])]), guard_port)
    lab, local = start_upstream("frontier-lab"), start_upstream("local-vllm")
    cfg = demo_config(tmp, 0, lab.port, local.port)
    cfg["state_dir"] = str(tmp)
    cfg["guard"] = {"default": "double", "guards": {"double": {
        "kind": "moderation", "url": f"http://127.0.0.1:{guard_port}/v1/moderations", "timeout_seconds": 5}}}
    path = tmp / "clearance.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    config = load_config(path)
    keys = create_world(config)
    _ensure_audit_key(config)
    gw = start_gateway(path, env={"FRONTIER_LAB_API_KEY": "demo-not-a-real-key"})
    yield {"gw": gw, "keys": keys, "state": tmp}
    gw.stop()
    for s in (guard, lab, local):
        s.should_exit = True


def ask(world, persona: str, text: str, model: str = "frontier-cyber", request_id: str | None = None):
    c = openai.OpenAI(base_url=world["gw"].url + "/v1", api_key=world["keys"][persona], max_retries=0)
    return c.chat.completions.create(model=model, messages=[{"role": "user", "content": text}],
                                     extra_headers={"x-request-id": request_id} if request_id else None)


def refused(world, persona: str, text: str, model: str = "frontier-cyber", request_id: str | None = None) -> dict:
    with pytest.raises(openai.PermissionDeniedError) as exc:
        ask(world, persona, text, model, request_id)
    assert exc.value.status_code == 403
    return exc.value.body


def audit_entry(world, request_id: str) -> dict:
    [db] = list(world["state"].glob("*.db"))
    deadline = time.monotonic() + 10
    while True:
        with sqlite3.connect(db) as conn:
            bodies = [json.loads(b) for (b,) in conn.execute("SELECT body FROM audit_entries ORDER BY idx")]
        got = [e for e in bodies if e["client_request_id"] == request_id]
        if got or time.monotonic() > deadline:
            assert got, f"no audit entry for {request_id}"
            return got[0]
        time.sleep(0.05)


def test_high_risk_served_to_the_critical_infrastructure_defender(world):
    assert ask(world, "us-defender", "[high-risk] exploit for our own server").choices[0].message.content


@pytest.mark.parametrize("persona", ["us-analyst", "intl-researcher", "gov-evaluator"])
def test_high_risk_refused_to_others_naming_the_tier_in_the_answer_and_the_audit_log(world, persona):
    rid = f"high-risk-{persona}"
    body = refused(world, persona, "[high-risk] exploit for our own server", request_id=rid)
    assert body["code"] == "guard_blocked"
    assert [r["id"] for r in body["reasons"]] == ["guard-cyber-high-risk"]
    assert "guard-cyber-high-risk: High-risk dual-use cyber request" in body["message"]
    entry = audit_entry(world, rid)
    assert entry["decision"] == "guard_block" and entry["reasons"] == ["guard-cyber-high-risk"]
    assert entry["status"] == 403


def test_high_risk_refused_off_the_cyber_model_even_to_the_defender(world):
    body = refused(world, "us-defender", "[high-risk] exploit for our own server", model="frontier-general")
    assert [r["id"] for r in body["reasons"]] == ["guard-cyber-high-risk"]


@pytest.mark.parametrize("model", ["frontier-cyber", "frontier-general", "open-local"])
@pytest.mark.parametrize("persona", PERSONAS)
def test_prohibited_refused_to_everyone_naming_the_tier(world, persona, model):
    rid = f"prohibited-{persona}-{model}"
    body = refused(world, persona, "[prohibited] ransomware for a hospital", model=model, request_id=rid)
    assert body["code"] == "guard_blocked"
    assert "guard-cyber-prohibited" in [r["id"] for r in body["reasons"]]
    assert "guard-cyber-prohibited: Prohibited cyber request" in body["message"]
    assert "guard-cyber-prohibited" in audit_entry(world, rid)["reasons"]


@pytest.mark.parametrize("persona", PERSONAS)
def test_low_risk_and_benign_served_to_everyone_on_the_cyber_model(world, persona):
    assert ask(world, persona, "[low-risk] scan our own address range").choices[0].message.content
    assert ask(world, persona, "write a Sigma rule that detects Log4Shell exploitation").choices[0].message.content


def test_a_guard_reporting_only_cyber_offense_is_held_to_the_high_risk_rule(world):
    assert ask(world, "us-defender", "[offense-only] exploit").choices[0].message.content
    body = refused(world, "us-analyst", "[offense-only] exploit")
    assert [r["id"] for r in body["reasons"]] == ["guard-cyber-high-risk"]


def test_every_verified_persona_sees_the_cyber_model(world):
    for persona in PERSONAS:
        c = openai.OpenAI(base_url=world["gw"].url + "/v1", api_key=world["keys"][persona], max_retries=0)
        assert "frontier-cyber" in {m.id for m in c.models.list()}

"""Policy invariants through the real CLI and the admin API, on the demo world's store (SQLite)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from starlette.applications import Starlette
from starlette.testclient import TestClient

from clearance.api.admin_policy import routes
from clearance.demo.world import load_demo, write_demo_config
from clearance.store.db import make_engine, make_sessionmaker
from tests.integration.gateway import run_cli

BLANKET = "permit (principal, action, resource);\n"
TOKEN_ENV = "CLEARANCE_TEST_INVARIANTS_TOKEN"


@pytest.fixture
def demo(tmp_path):
    """The demo's config and world (no server needed: every command works on the store)."""
    config_path = write_demo_config(tmp_path / "demo", 1, 2, 3)
    config, _keys = load_demo(tmp_path / "demo")
    run_cli(config_path, "audit", "keygen")  # changes are recorded in the audit log, which signs checkpoints
    (tmp_path / "blanket.cedar").write_text(BLANKET)
    return config_path, config, tmp_path


def use_invariants(config_path: Path, path: Path) -> None:
    raw = yaml.safe_load(config_path.read_text())
    raw["policy"]["invariants"] = str(path)
    config_path.write_text(yaml.safe_dump(raw))


def test_policy_check_proves_the_demo_invariants(demo):
    config_path, _, _ = demo
    out = run_cli(config_path, "policy", "check", "--json")
    report = json.loads(out.stdout)
    assert report["ok"] and report["users"] == 5 and report["models"] == 3
    assert {r["status"] for r in report["results"]} == {"holds"}


def test_blanket_permit_refused_with_a_counterexample_then_overridden_and_recorded(demo):
    config_path, _, tmp = demo
    args = ("directive", "apply", str(tmp / "blanket.cedar"), "--id", "OPEN-1", "--title", "Everything for everyone")
    refused = run_cli(config_path, *args, check=False)
    assert refused.returncode != 0
    assert "frontier-cyber-verified-only" in refused.stderr
    assert "intl-guest" in refused.stderr and "us_person=False" in refused.stderr and "frontier-cyber" in refused.stderr
    assert "--override-invariant frontier-cyber-verified-only" in refused.stderr
    assert json.loads(run_cli(config_path, "directive", "list", "--json").stdout) == []  # nothing was applied

    no_reason = run_cli(config_path, *args, "--override-invariant", "frontier-cyber-verified-only", check=False)
    assert no_reason.returncode != 0 and "needs a reason" in no_reason.stderr
    unknown = run_cli(config_path, *args, "--override-invariant", "no-such", "--reason", "x", check=False)
    assert unknown.returncode != 0 and "no invariant no-such" in unknown.stderr

    run_cli(config_path, *args, "--override-invariant", "frontier-cyber-verified-only", "--reason", "drill")
    assert [d["id"] for d in json.loads(run_cli(config_path, "directive", "list", "--json").stdout)] == ["OPEN-1"]
    overrides = json.loads(run_cli(config_path, "policy", "overrides", "--json").stdout)
    assert len(overrides) == 1
    o = overrides[0]
    assert o["invariant"] == "frontier-cyber-verified-only" and o["reason"] == "drill"
    assert o["change"] == "directive apply OPEN-1"
    assert o["counterexample"]["counterexample"]["principal"]["user"] == "intl-guest"

    check = run_cli(config_path, "policy", "check", check=False)
    assert check.returncode == 1 and "FAIL frontier-cyber-verified-only" in check.stdout
    # Revoking the directive restores the invariant, so it is not refused.
    run_cli(config_path, "directive", "revoke", "OPEN-1", "--reason", "drill over")
    assert run_cli(config_path, "policy", "check").returncode == 0


def test_revoking_a_grant_an_always_invariant_relies_on_is_refused(demo):
    config_path, _, tmp = demo
    inv = tmp / "inv.yaml"
    inv.write_text(json.dumps([{"id": "evaluators-window", "title": "The evaluators' window stays open",
                                "always": {"resource": "frontier-cyber", "principal": {"org": "standards-lab"},
                                           "context": {"now": {"from": "2026-01-01T00:00:00Z",
                                                               "until": "2030-01-01T00:00:00Z"},
                                                       "guard": {"jailbreak": "< 0.5", "cyber_high_risk": "< 0.5"}}}}]))
    use_invariants(config_path, inv)
    out = run_cli(config_path, "grant", "add", "--org", "standards-lab", "--model", "frontier-cyber", "--from",
                  "2026-01-01T00:00:00Z", "--until", "2030-01-01T00:00:00Z", "--reason", "evaluation")
    grant_id = out.stdout.split()[1].rstrip(":")
    # standards-lab users are verified, so the demo permit already covers them: the grant is not what the
    # invariant relies on, and revoking it is allowed.
    run_cli(config_path, "grant", "revoke", grant_id, "--reason", "done")
    assert run_cli(config_path, "policy", "check").returncode == 0
    # A directive closing frontier-cyber to standards-lab inside the window is refused.
    (tmp / "close.cedar").write_text('forbid (principal in Clearance::Org::"standards-lab", action, '
                                     'resource == Clearance::Model::"frontier-cyber");\n')
    refused = run_cli(config_path, "directive", "apply", str(tmp / "close.cedar"), "--id", "CLOSE-1", "--title",
                      "Close", "--effective-at", "2029-06-01T00:00:00Z", check=False)
    assert refused.returncode != 0 and "evaluators-window" in refused.stderr
    assert "gov-evaluator" in refused.stderr and "DENIED" in refused.stderr
    assert "2029-06-01T00:00:00.000Z" in refused.stderr  # found at the directive's instant, years ahead


def _compliance_token(config_path: Path, name: str = "ops") -> str:
    """A named compliance administrator's token (the shared token may only create the first operator)."""
    return json.loads(run_cli(config_path, "admin", "add", name, "--role", "compliance", "--json").stdout)["token"]


def test_admin_api_refuses_with_409_and_accepts_an_override(demo, monkeypatch):
    config_path, config, _ = demo
    monkeypatch.setenv(TOKEN_ENV, "s3cret")
    token = _compliance_token(config_path)
    engine = make_engine(config.db_url)
    try:
        app = Starlette(routes=routes(make_sessionmaker(engine), TOKEN_ENV,
                                      known_models=[m.name for m in config.models], config=config))
        client = TestClient(app, headers={"authorization": f"Bearer {token}"})
        body = {"id": "OPEN-2", "title": "Everything", "text": BLANKET}
        r = client.post("/admin/directives", json=body)
        assert r.status_code == 409
        err = r.json()["error"]
        assert err["code"] == "invariant_violation"
        assert err["reasons"][0]["id"] == "frontier-cyber-verified-only"
        assert "intl-guest" in err["reasons"][0]["counterexample"]
        assert client.get("/admin/directives/OPEN-2").status_code == 404
        r = client.post("/admin/directives", json={**body, "override_invariants": ["frontier-cyber-verified-only"],
                                                   "override_reason": "tabletop exercise", "by": "ops"})
        assert r.status_code == 201 and r.json()["overridden_invariants"] == ["frontier-cyber-verified-only"]
    finally:
        engine.dispose()
    overrides = json.loads(run_cli(config_path, "policy", "overrides", "--json").stdout)
    assert [(o["invariant"], o["by"], o["reason"]) for o in overrides] == [
        ("frontier-cyber-verified-only", "ops", "tabletop exercise")]


def test_admin_api_checks_approvals(demo, monkeypatch, tmp_path):
    config_path, config, _ = demo
    monkeypatch.setenv(TOKEN_ENV, "s3cret")
    token = _compliance_token(config_path)
    inv = tmp_path / "eu.yaml"
    inv.write_text(yaml.safe_dump([{"id": "eu-lab-no-high-risk", "never": {
        "principal": {"org": "eu-lab"}, "context": {"guard": {"cyber_high_risk": ">= 0.5"}}}}]))
    config = config.model_copy(update={"policy": config.policy.model_copy(update={"invariants": str(inv)})})
    engine = make_engine(config.db_url)
    try:
        client = TestClient(Starlette(routes=routes(make_sessionmaker(engine), TOKEN_ENV, config=config)),
                            headers={"authorization": f"Bearer {token}"})
        a = client.post("/admin/approvals", json={"org": "eu-lab", "model": "frontier-cyber",
                                                   "use_case": "security-testing"}).json()
        r = client.post(f"/admin/approvals/{a['id']}/approve", json={"by": "ops"})
        assert r.status_code == 409, r.text
        reason = r.json()["error"]["reasons"][0]
        assert reason["id"] == "eu-lab-no-high-risk" and "frontier-cyber" in reason["counterexample"]
        assert client.get(f"/admin/approvals/{a['id']}").json()["status"] == "requested"
    finally:
        engine.dispose()

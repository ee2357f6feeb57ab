"""The policy admin routes over HTTP (Starlette test client) on a real SQLite store, checked against the compiled engine."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from clearance.api.admin_policy import routes
from clearance.identity.admins import add_admin
from clearance.identity.tables import Org, User
from clearance.policy.engine import PolicyContext, compile_policy
from clearance.policy.settings import PolicySettings
from clearance.config import Config
from clearance.store.db import make_engine, make_sessionmaker, migrate
from clearance.store.version import current_version
from clearance.types import Principal

T = datetime(2025, 1, 1, tzinfo=timezone.utc)
TOKEN_ENV = "CLEARANCE_TEST_POLICY_ADMIN_TOKEN"


@pytest.fixture
def world(tmp_path, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "s3cret")
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    migrate(engine)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as s:
        s.add(Org(slug="acme-bank", name="Acme", created_at=T))
        s.flush()
        s.add(User(id="us-analyst", org_slug="acme-bank", nationality="US", us_person=True, verified=True,
                   created_at=T, attributes={}))
        token = add_admin(s, "ops", "compliance").token  # the policy routes need a named administrator
    config = Config.model_validate({
        "backends": [{"name": "api", "base_url": "http://127.0.0.1:9/v1"}],
        "models": [{"name": "frontier-general", "family": "frontier", "backends": ["api"]},
                   {"name": "frontier-next", "family": "frontier", "backends": ["api"],
                    "attributes": {"approval_required": True}}],
        "policy": PolicySettings(files=[]).model_dump(),
    })
    app = Starlette(routes=routes(sessions, TOKEN_ENV, known_models=[m.name for m in config.models]))
    client = TestClient(app, headers={"authorization": f"Bearer {token}"})
    yield client, sessions, config
    engine.dispose()


def decide(sessions, config, model):
    with sessions() as s:
        eng = compile_policy(s, config)
    return eng.decide(Principal("k", "us-analyst", "acme-bank"), model,
                      PolicyContext(datetime.now(timezone.utc), "", {"jailbreak": 0.0, "cyber_offense": 0.0}))


def test_token_required(world):
    client, _, _ = world
    r = client.get("/admin/directives", headers={"authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_admin_token"


def test_directive_lifecycle(world):
    client, sessions, config = world
    with sessions() as s:
        v0 = current_version(s)
    permit = 'permit (principal, action, resource == Clearance::Model::"frontier-general");'
    r = client.post("/admin/directives", json={"id": "OPEN", "title": "Open general model", "text": permit})
    assert r.status_code == 201 and r.json()["status"] == "in_force"
    with sessions() as s:
        assert current_version(s) > v0
    assert decide(sessions, config, "frontier-general").allowed

    forbid = 'forbid (principal, action, resource in Clearance::ModelFamily::"frontier")\nunless { principal.us_persn };'
    r = client.post("/admin/directives", json={"id": "BAD", "title": "typo", "text": forbid})
    assert r.status_code == 400 and "line 2, column" in r.json()["error"]["message"]

    assert client.post("/admin/directives", json={"id": "OPEN", "title": "again", "text": permit}).status_code == 409
    assert client.post("/admin/directives", json={"title": "no id", "text": permit}).status_code == 400
    assert client.post("/admin/directives", content=b"[1, 2]").status_code == 400
    assert client.post("/admin/directives", content=b"{not json").status_code == 400

    r = client.post("/admin/directives/OPEN/revoke", json={"reason": "done"})
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    assert client.post("/admin/directives/OPEN/revoke", json={}).status_code == 409
    assert client.post("/admin/directives/NOPE/revoke", json={}).status_code == 404
    d = decide(sessions, config, "frontier-general")
    assert not d.allowed and d.reason_ids == ["default-deny"]
    listed = client.get("/admin/directives").json()["data"]
    assert [x["id"] for x in listed] == ["OPEN"] and listed[0]["revoked_reason"] == "done"


def test_approval_lifecycle(world):
    client, sessions, config = world
    r = client.post("/admin/approvals", json={"org": "acme-bank", "model": "frontier-next", "reason": "fraud"})
    assert r.status_code == 201
    aid = r.json()["id"]
    assert client.post("/admin/approvals", json={"org": "acme-bank", "model": "frontier-next"}).status_code == 409
    assert client.post("/admin/approvals", json={"org": "acme-bank", "model": "nope"}).status_code == 400
    assert client.post("/admin/approvals", json={"org": "nope", "model": "frontier-next"}).status_code == 400
    assert not decide(sessions, config, "frontier-next").allowed

    r = client.post(f"/admin/approvals/{aid}/approve", json={"by": "ops", "reason": "vetted"})
    assert r.status_code == 200 and r.json()["status"] == "approved"
    d = decide(sessions, config, "frontier-next")
    assert d.allowed and d.reason_ids == [f"approval:{aid}"]
    assert client.post(f"/admin/approvals/{aid}/deny", json={"reason": "late"}).status_code == 409
    assert client.post(f"/admin/approvals/{aid}/revoke", json={}).status_code == 400  # a reason is required
    r = client.post(f"/admin/approvals/{aid}/revoke", json={"by": "ops", "reason": "contract ended"})
    assert r.status_code == 200
    assert [h["action"] for h in r.json()["history"]] == ["requested", "approved", "revoked"]
    assert not decide(sessions, config, "frontier-next").allowed
    assert client.get("/admin/approvals?status=revoked").json()["data"][0]["id"] == aid
    assert client.get("/admin/approvals/apr_missing").status_code == 404


def test_grants(world):
    client, sessions, config = world
    body = {"org": "acme-bank", "model": "frontier-general", "starts_at": "2020-01-01T00:00:00Z",
            "ends_at": "2099-01-01T00:00:00Z", "reason": "evaluation"}
    r = client.post("/admin/grants", json=body)
    assert r.status_code == 201 and r.json()["status"] == "open"
    assert decide(sessions, config, "frontier-general").allowed
    assert client.post("/admin/grants", json={**body, "ends_at": "2019-01-01"}).status_code == 400
    assert client.post("/admin/grants", json={**body, "starts_at": "soon"}).status_code == 400
    gid = r.json()["id"]
    assert client.post(f"/admin/grants/{gid}/revoke", json={"reason": "over"}).status_code == 200
    assert not decide(sessions, config, "frontier-general").allowed

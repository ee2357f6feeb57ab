"""User and org lifecycle, named administrators and the change log, end to end.

Two gateway replicas share one store (SQLite file, then PostgreSQL): an
update, disable, enable or delete made through the CLI or the admin API is
enforced by both within a second, and every change is listed by ``audit
report`` with the administrator who made it.
"""

from __future__ import annotations

import getpass
import json
import time

import httpx
import pytest

from tests.integration.gateway import add_persona, run_cli, start_gateway, start_upstream, write_config

POLICY = """
@id("chat-for-all") @title("Everyone may chat")
permit (principal, action, resource == Clearance::Model::"chat");
@id("restricted-us") @title("Verified US persons only")
permit (principal, action, resource == Clearance::Model::"restricted") when { principal.us_person && principal.verified };
"""
SHARED = "shared-bootstrap-token"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request, tmp_path_factory):
    from tests.conftest import drop_pg_database, make_pg_database

    tmp = tmp_path_factory.mktemp("lifecycle-" + request.param)
    db_url = f"sqlite:///{tmp / 'clearance.db'}" if request.param == "sqlite" else make_pg_database()
    up = start_upstream("primary-sim")
    (tmp / "policy.cedar").write_text(POLICY)
    config = write_config(tmp, db_url, [{"name": "primary", "base_url": up.url + "/v1"}],
                          [{"name": m, "backends": ["primary"]} for m in ("chat", "restricted")],
                          policy={"files": ["policy.cedar"]})
    keys = {"alice": add_persona(config, "alice", "acme-bank"), "gil": add_persona(config, "gil", "gridco")}
    env = {"CLEARANCE_ADMIN_TOKEN": SHARED}
    replicas = [start_gateway(config, env=env), start_gateway(config, env=env)]
    yield {"replicas": replicas, "keys": keys, "config": config}
    for gw in replicas:
        gw.stop()
    up.stop()
    if request.param == "postgresql":
        drop_pg_database(db_url)


def chat(gw, key: str, model: str = "chat") -> httpx.Response:
    return httpx.post(gw.url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                      json={"model": model, "messages": [{"role": "user", "content": "hello"}]}, timeout=30)


def on_both_within_a_second(world, key: str, model: str, status: int, code: str | None = None) -> None:
    """Every replica answers ``status`` (and error ``code``) for ``key`` within a second."""
    for gw in world["replicas"]:
        deadline = time.monotonic() + 1.0
        while True:
            r = chat(gw, key, model)
            if r.status_code == status and (code is None or r.json()["error"]["code"] == code):
                break
            assert time.monotonic() < deadline, (gw.url, r.status_code, r.text)
            time.sleep(0.05)


def test_cli_update_disable_enable_delete_on_two_replicas(world):
    config, key = world["config"], world["keys"]["alice"]
    on_both_within_a_second(world, key, "restricted", 200)
    refused = run_cli(config, "user", "update", "alice", "--no-us-person", check=False)
    assert refused.returncode != 0 and "US person" in refused.stderr
    assert run_cli(config, "user", "update", "alice", "--nationality", "XX", check=False).returncode != 0
    run_cli(config, "user", "update", "alice", "--no-us-person", "--not-us-person-confirmed")
    on_both_within_a_second(world, key, "restricted", 403, "policy_denied")
    run_cli(config, "user", "update", "alice", "--us-person")
    on_both_within_a_second(world, key, "restricted", 200)
    run_cli(config, "user", "update", "alice", "--verified-until", "2001-01-01T00:00:00")  # lapsed at once
    on_both_within_a_second(world, key, "restricted", 403, "policy_denied")
    run_cli(config, "user", "update", "alice", "--verified-until", "never")
    on_both_within_a_second(world, key, "restricted", 200)

    run_cli(config, "user", "disable", "alice")
    on_both_within_a_second(world, key, "chat", 403, "user_disabled")
    r = chat(world["replicas"][0], key)
    assert "disabled" in r.json()["error"]["message"] and r.json()["error"]["request_id"] == r.headers["x-request-id"]
    run_cli(config, "user", "enable", "alice")
    on_both_within_a_second(world, key, "chat", 200)
    run_cli(config, "org", "disable", "acme-bank")
    on_both_within_a_second(world, key, "chat", 403, "org_disabled")
    run_cli(config, "org", "enable", "acme-bank")
    on_both_within_a_second(world, key, "chat", 200)


def test_delete_is_a_tombstone_and_revokes_keys(world):
    config = world["config"]
    key = add_persona(config, "dora", "acme-bank")
    on_both_within_a_second(world, key, "chat", 200)
    run_cli(config, "user", "delete", "dora")
    on_both_within_a_second(world, key, "chat", 401, "revoked_api_key")
    assert "dora\t" not in run_cli(config, "user", "list").stdout
    assert "deleted" in next(line for line in run_cli(config, "user", "list", "--all").stdout.splitlines()
                             if line.startswith("dora\t"))
    again = run_cli(config, "user", "add", "dora", "--org", "acme-bank", check=False)
    assert again.returncode != 0 and "never reused" in again.stderr
    assert "revoked" in run_cli(config, "key", "list", "--user", "dora").stdout


def _admin(world, token: str | None = None):
    url = world["replicas"][0].url
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return lambda method, path, **kw: httpx.request(method, url + path, headers=headers, timeout=30, **kw)


def test_roles_on_the_admin_api(world):
    shared = _admin(world, SHARED)
    assert shared("GET", "/admin/users").status_code == 403
    first = shared("POST", "/admin/admins", json={"name": "root-op", "role": "operator"})
    assert first.status_code == 201, first.text
    assert shared("POST", "/admin/admins", json={"name": "sneaky", "role": "operator"}).status_code == 403
    op = _admin(world, first.json()["token"])
    tokens = {}
    for name, role, org in [("oa-acme", "org-admin", "acme-bank"), ("comp", "compliance", None),
                            ("aud", "auditor", None)]:
        r = op("POST", "/admin/admins", json={"name": name, "role": role, **({"org": org} if org else {})})
        assert r.status_code == 201, r.text
        tokens[name] = r.json()["token"]
    assert op("POST", "/admin/admins", json={"name": "x", "role": "org-admin"}).status_code == 400  # no org
    oa, comp, aud = (_admin(world, tokens[n]) for n in ("oa-acme", "comp", "aud"))

    # an org-admin of acme-bank: its own users and keys only, never `verified`, never a directive
    assert oa("GET", "/admin/whoami").json() == {"name": "oa-acme", "role": "org-admin", "org": "acme-bank"}
    listed = oa("GET", "/admin/users").json()["users"]
    assert listed and {u["org"] for u in listed} == {"acme-bank"}
    for method, path, body in [("GET", "/admin/users?org=gridco", None), ("GET", "/admin/users/gil", None),
                               ("POST", "/admin/users/gil", {"nationality": "FR"}),
                               ("POST", "/admin/users/gil/disable", {}),
                               ("POST", "/admin/users", {"id": "mole", "org": "gridco", "nationality": "GB"}),
                               ("POST", "/admin/keys", {"user": "gil"}),
                               ("GET", "/admin/keys?user=gil", None),
                               ("POST", "/admin/users/alice", {"verified": True}),
                               ("POST", "/admin/directives", {"id": "D1", "title": "t",
                                                              "text": "forbid (principal, action, resource);"}),
                               ("POST", "/admin/orgs", {"slug": "newco"})]:
        r = oa(method, path, json=body) if body is not None else oa(method, path)
        assert r.status_code == 403, (path, r.status_code, r.text)
        assert r.json()["error"]["code"] == "forbidden" and r.json()["error"]["request_id"]
    r = oa("POST", "/admin/users", json={"id": "acme-new", "org": "acme-bank", "nationality": "US"})
    assert r.status_code == 400 and "US person" in r.json()["error"]["message"]
    r = oa("POST", "/admin/users", json={"id": "acme-new", "org": "acme-bank", "nationality": "GB"})
    assert r.status_code == 201 and r.json()["verified"] is False
    assert oa("POST", "/admin/users/acme-new", json={"nationality": "ZZ"}).status_code == 400
    assert oa("POST", "/admin/users/acme-new", json={"nationality": "de"}).json()["nationality"] == "DE"
    assert oa("POST", "/admin/users/acme-new", json={"org": "gridco"}).status_code == 400
    created = oa("POST", "/admin/keys", json={"user": "acme-new"})
    assert created.status_code == 201
    key = created.json()["key"]
    on_both_within_a_second(world, key, "chat", 200)
    assert oa("POST", "/admin/users/acme-new/disable", json={}).json()["disabled"] is True
    on_both_within_a_second(world, key, "chat", 403, "user_disabled")
    assert oa("POST", "/admin/users/acme-new/enable", json={}).status_code == 200
    assert oa("POST", "/admin/users/nobody/disable", json={}).status_code == 404

    # compliance sets `verified`, and nothing of the org-admin's
    assert comp("POST", "/admin/users/acme-new", json={"verified": True}).json()["verified"] is True
    assert comp("POST", "/admin/users/acme-new", json={"nationality": "FR"}).status_code == 403
    assert comp("POST", "/admin/directives", json={"id": "D-OK", "title": "t",
                                                   "text": 'forbid (principal, action, resource) when '
                                                           '{ principal.nationality == "KP" };'}).status_code == 201
    # the auditor reads, and changes nothing
    assert aud("GET", "/admin/users").status_code == 200 and aud("GET", "/admin/admins").status_code == 200
    assert aud("POST", "/admin/orgs/gridco/disable", json={}).status_code == 403
    # orgs through the API
    assert op("POST", "/admin/orgs/gridco", json={"name": "Grid Co"}).json()["name"] == "Grid Co"
    assert op("POST", "/admin/orgs/gridco/disable", json={}).json()["disabled"] is True
    on_both_within_a_second(world, world["keys"]["gil"], "chat", 403, "org_disabled")
    assert op("POST", "/admin/orgs/gridco/enable", json={}).json()["disabled"] is False
    on_both_within_a_second(world, world["keys"]["gil"], "chat", 200)

    # a disabled administrator's token stops working; bad tokens are 401
    assert op("POST", "/admin/admins/aud/disable", json={}).status_code == 200
    assert aud("GET", "/admin/users").status_code == 401
    assert _admin(world, "clra_nope_nope")("GET", "/admin/users").status_code == 401
    assert _admin(world)("GET", "/admin/users").status_code == 401

    # every change above is in the log, with its administrator
    report = json.loads(run_cli(world["config"], "audit", "report").stdout)
    seen = {(c["administrator"], c["action"], c["object"]) for c in report["changes"]}
    for expected in [("admin:root-op", "admin.add", "admin:oa-acme"),
                     ("admin:oa-acme", "user.add", "user:acme-new"),
                     ("admin:oa-acme", "key.create", f"key:{created.json()['key_id']}"),
                     ("admin:oa-acme", "user.disable", "user:acme-new"),
                     ("admin:comp", "user.update", "user:acme-new"),
                     ("admin:comp", "directive.apply", "directive:D-OK"),
                     ("admin:root-op", "org.disable", "org:gridco"),
                     ("admin:root-op", "admin.disable", "admin:aud"),
                     (f"local:{getpass.getuser()}", "user.add", "user:alice")]:
        assert expected in seen, expected
    change = next(c for c in report["changes"] if c["action"] == "user.disable" and c["object"] == "user:acme-new")
    assert len(change["before_sha256"]) == 64 and change["before_sha256"] != change["after_sha256"]
    assert change["request_id"]
    run_cli(world["config"], "audit", "verify")

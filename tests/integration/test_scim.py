"""SCIM 2.0 provisioning end to end: a real gateway, and a client whose payloads are scim2-models objects.

Each org's token reaches only that org's users; deprovisioning (``active:
false``, DELETE) is enforced within a second; groups are read-only.  Runs on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from scim2_models import Context, Email, ListResponse, PatchOp, PatchOperation, User

from clearance.scim.resources import EXTENSION_URN, ClearanceUser, ScimUser
from tests.integration.gateway import add_persona, run_cli, start_gateway, start_upstream, write_config

POLICY = """
@id("chat-for-all") @title("Everyone may chat")
permit (principal, action, resource == Clearance::Model::"chat");
@id("restricted-us") @title("Verified US persons only")
permit (principal, action, resource == Clearance::Model::"restricted") when { principal.us_person && principal.verified };
"""


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request, tmp_path_factory):
    from tests.conftest import drop_pg_database, make_pg_database

    tmp = tmp_path_factory.mktemp("scim-" + request.param)
    db_url = f"sqlite:///{tmp / 'clearance.db'}" if request.param == "sqlite" else make_pg_database()
    up = start_upstream("primary-sim")
    (tmp / "policy.cedar").write_text(POLICY)
    config = write_config(tmp, db_url, [{"name": "primary", "base_url": up.url + "/v1"}],
                          [{"name": m, "backends": ["primary"]} for m in ("chat", "restricted")],
                          policy={"files": ["policy.cedar"]})
    add_persona(config, "acme-alice", "acme-bank", groups=("critical-infrastructure",))
    run_cli(config, "org", "add", "gridco")
    tokens = {"acme-bank": run_cli(config, "org", "scim-token", "acme-bank").stdout.strip(),
              "gridco": run_cli(config, "org", "scim-token", "gridco", "--trust-verified").stdout.strip()}
    gw = start_gateway(config)
    yield {"gw": gw, "tokens": tokens, "config": config}
    gw.stop()
    up.stop()
    if request.param == "postgresql":
        drop_pg_database(db_url)


class Scim:
    """A small SCIM client: requests built from scim2-models objects, responses parsed into them."""

    def __init__(self, base: str, token: str) -> None:
        self.http = httpx.Client(base_url=base + "/scim/v2", timeout=30,
                                 headers={"authorization": f"Bearer {token}", "content-type": "application/scim+json"})

    def create(self, user: ScimUser) -> httpx.Response:
        return self.http.post("/Users", content=json.dumps(user.model_dump(scim_ctx=Context.RESOURCE_CREATION_REQUEST)))

    def patch(self, user_id: str, *ops: PatchOperation) -> httpx.Response:
        body = PatchOp[ScimUser](operations=list(ops)).model_dump(scim_ctx=Context.RESOURCE_PATCH_REQUEST)
        return self.http.patch(f"/Users/{user_id}", content=json.dumps(body))

    def get(self, user_id: str) -> ScimUser:
        r = self.http.get(f"/Users/{user_id}")
        r.raise_for_status()
        return ScimUser.model_validate(r.json(), scim_ctx=Context.RESOURCE_QUERY_RESPONSE)


def new_user(name: str, nationality: str, us_person: bool | None, verified: bool | None = None) -> ScimUser:
    u = ScimUser(user_name=name, active=True, emails=[Email(value=f"{name}@example.org", primary=True)])
    u[ClearanceUser] = ClearanceUser(nationality=nationality, us_person=us_person, verified=verified)
    return u


def chat(world, key: str, model: str = "chat") -> int:
    return httpx.post(world["gw"].url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                      json={"model": model, "messages": [{"role": "user", "content": "hello"}]}, timeout=30).status_code


def until(fn, seconds: float = 1.5) -> bool:
    deadline = time.monotonic() + seconds
    while not fn():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_create_patch_deprovision_and_delete(world):
    scim = Scim(world["gw"].url, world["tokens"]["gridco"])
    created = scim.create(new_user("grid-hal", "US", True, verified=True))
    assert created.status_code == 201, created.text
    got = ScimUser.model_validate(created.json(), scim_ctx=Context.RESOURCE_CREATION_RESPONSE)
    assert got.id == "grid-hal" and got[ClearanceUser].nationality == "US" and got[ClearanceUser].verified is True
    assert "\tgridco\t" in next(u for u in run_cli(world["config"], "user", "list").stdout.splitlines()
                                if u.startswith("grid-hal\t"))
    key = json.loads(run_cli(world["config"], "key", "create", "--user", "grid-hal", "--json").stdout)["key"]
    assert until(lambda: chat(world, key, "restricted") == 200)

    r = scim.patch("grid-hal", PatchOperation[ScimUser](op="replace", path=f"{EXTENSION_URN}:nationality", value="DE"),
                   PatchOperation[ScimUser](op="replace", path=f"{EXTENSION_URN}:usPerson", value=False))
    assert r.status_code == 200, r.text
    assert scim.get("grid-hal")[ClearanceUser].nationality == "DE"
    assert until(lambda: chat(world, key, "restricted") == 403)

    r = scim.patch("grid-hal", PatchOperation[ScimUser](op="replace", path="active", value=False))
    assert r.status_code == 200 and r.json()["active"] is False
    assert until(lambda: chat(world, key) == 403)  # deprovisioned: refused within a second
    assert scim.patch("grid-hal", PatchOperation[ScimUser](op="replace", path="active", value=True)).status_code == 200
    assert until(lambda: chat(world, key) == 200)

    listed = scim.http.get("/Users", params={"filter": 'userName eq "grid-hal"'})
    lr = ListResponse[ScimUser].model_validate(listed.json(), scim_ctx=Context.SEARCH_RESPONSE)
    assert lr.total_results == 1 and lr.resources[0].user_name == "grid-hal"

    assert scim.http.delete("/Users/grid-hal").status_code == 204
    assert until(lambda: chat(world, key) == 401)  # its keys are revoked
    assert scim.http.get("/Users/grid-hal").status_code == 404
    report = json.loads(run_cli(world["config"], "audit", "report").stdout)
    actions = [(c["administrator"], c["action"]) for c in report["changes"] if c["object"] == "user:grid-hal"]
    assert ("scim:gridco", "user.add") in actions and ("scim:gridco", "user.delete") in actions
    assert ("scim:gridco", "user.disable") in actions


def test_a_token_reaches_only_its_own_org(world):
    acme = Scim(world["gw"].url, world["tokens"]["acme-bank"])
    grid = Scim(world["gw"].url, world["tokens"]["gridco"])
    assert grid.http.get("/Users/acme-alice").status_code == 404
    r = grid.patch("acme-alice", PatchOperation[ScimUser](op="replace", path="active", value=False))
    assert r.status_code == 404
    assert grid.http.delete("/Users/acme-alice").status_code == 404
    clash = grid.create(new_user("acme-alice", "DE", False))
    assert clash.status_code == 409 and clash.json()["scimType"] == "uniqueness"
    assert [u["userName"] for u in acme.http.get("/Users").json()["Resources"]] == ["acme-alice"]
    # acme-bank's token is not trusted for `verified`: it is ignored
    made = acme.create(new_user("acme-ivy", "GB", False, verified=True))
    assert made.status_code == 201 and made.json()[EXTENSION_URN]["verified"] is False
    # groups: the org's own, read-only
    groups = acme.http.get("/Groups").json()
    assert [g["displayName"] for g in groups["Resources"]] == ["critical-infrastructure"]
    assert grid.http.get("/Groups").json()["totalResults"] == 0
    refused = grid.http.post("/Groups", json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                              "displayName": "critical-infrastructure"})
    assert refused.status_code == 403


def test_bad_requests_get_scim_errors(world):
    grid = Scim(world["gw"].url, world["tokens"]["gridco"])
    bad_token = httpx.get(world["gw"].url + "/scim/v2/Users", headers={"authorization": "Bearer clrs_nope"})
    assert bad_token.status_code == 401 and bad_token.json()["requestId"] == bad_token.headers["x-request-id"]
    assert httpx.get(world["gw"].url + "/scim/v2/Users").status_code == 401
    for user, scim_type in [(new_user("grid-xx", "XX", False), "invalidValue"),
                            (new_user("grid-usn", "US", None), "invalidValue"),
                            (new_user("UPPER", "DE", False), "invalidValue")]:
        r = grid.create(user)
        assert r.status_code == 400 and r.json()["scimType"] == scim_type, r.text
    r = grid.http.post("/Users", content=b"{not json")
    assert r.status_code == 400 and r.json()["status"] == "400"
    r = grid.http.post("/Users", json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]})
    assert r.status_code == 400 and "userName" in r.json()["detail"]
    r = grid.http.get("/Users", params={"filter": 'emails co "x"'})
    assert r.status_code == 400 and r.json()["scimType"] == "invalidFilter"
    assert User  # the core model is what ScimUser extends

"""OIDC bearer tokens end to end: a real gateway, a loopback JWKS endpoint, keys made with ``cryptography``.

Runs on SQLite and PostgreSQL.  The gridco issuer signs with RS256 (and
rotates to a new key); the labco issuer signs with ES256 and EdDSA and is
trusted for ``verified``.
"""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.integration.gateway import add_persona, run_cli, start_gateway, start_upstream, write_config
from tests.integration.idp import TestIdP

POLICY = """
@id("chat-for-all") @title("Everyone may chat")
permit (principal, action, resource == Clearance::Model::"chat");
@id("restricted-us") @title("Verified US persons only")
permit (principal, action, resource == Clearance::Model::"restricted") when { principal.us_person && principal.verified };
@id("ci-only") @title("Critical infrastructure only")
permit (principal, action, resource == Clearance::Model::"ci-model")
when { principal in Clearance::OrgGroup::"critical-infrastructure" };
"""


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request, tmp_path_factory):
    from tests.conftest import drop_pg_database, make_pg_database

    tmp = tmp_path_factory.mktemp("oidc-" + request.param)
    db_url = f"sqlite:///{tmp / 'clearance.db'}" if request.param == "sqlite" else make_pg_database()
    up = start_upstream("primary-sim")
    gridco, labco = TestIdP("https://login.gridco.example"), TestIdP("https://idp.labco.example")
    gridco.add_key("g1", "RS256")
    labco.add_key("l-es", "ES256")
    labco.add_key("l-ed", "EdDSA")
    (tmp / "policy.cedar").write_text(POLICY)
    claims = {"user": "sub", "nationality": "nationality", "us_person": "us_person", "verified": "identity_verified"}
    identity = {"oidc": [
        {"issuer": gridco.issuer, "jwks_url": gridco.jwks_url, "audience": "clearance", "org": "gridco",
         "claims": claims, "jwks_min_refetch_seconds": 0},
        {"issuer": labco.issuer, "jwks_url": labco.jwks_url, "audience": ["clearance", "other"], "org": "labco",
         "claims": claims, "trust_verified": True},
    ]}
    config = write_config(tmp, db_url, [{"name": "primary", "base_url": up.url + "/v1"}],
                          [{"name": m, "backends": ["primary"]} for m in ("chat", "restricted", "ci-model")],
                          policy={"files": ["policy.cedar"]}, identity=identity)
    run_cli(config, "org", "add", "gridco")
    run_cli(config, "org", "add", "labco")
    add_persona(config, "acme-alice", "acme-bank", groups=("critical-infrastructure",))
    gw = start_gateway(config)
    yield {"gw": gw, "gridco": gridco, "labco": labco, "config": config}
    gw.stop()
    up.stop()
    gridco.stop()
    labco.stop()
    if request.param == "postgresql":
        drop_pg_database(db_url)


def chat(world, token: str, model: str = "chat") -> httpx.Response:
    return httpx.post(world["gw"].url + "/v1/chat/completions", headers={"authorization": f"Bearer {token}"},
                      json={"model": model, "messages": [{"role": "user", "content": "hello"}]}, timeout=30)


def until(fn, seconds: float = 5.0):
    deadline = time.monotonic() + seconds
    while True:
        r = fn()
        if r or time.monotonic() > deadline:
            return r
        time.sleep(0.05)


def test_token_is_accepted_with_its_claims_and_the_user_is_provisioned(world):
    token = world["gridco"].token("g1", sub="grid-ann", nationality="US", us_person=True, identity_verified=True)
    client = openai.OpenAI(base_url=world["gw"].url + "/v1", api_key=token, max_retries=0)
    done = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    assert done.choices[0].message.content
    users = run_cli(world["config"], "user", "list", "--org", "gridco").stdout
    line = next(u for u in users.splitlines() if u.startswith("grid-ann\t"))
    assert "nationality=US" in line and "us_person=True" in line
    # gridco's issuer is not trusted for `verified`: the restricted model stays closed until compliance verifies.
    assert "verified=False" in line
    denied = chat(world, token, "restricted")
    assert denied.status_code == 403 and denied.json()["error"]["request_id"]
    run_cli(world["config"], "user", "update", "grid-ann", "--verified")
    assert until(lambda: chat(world, token, "restricted").status_code == 200, 1.5)
    # the same token again and /v1/models work too
    models = httpx.get(world["gw"].url + "/v1/models", headers={"authorization": f"Bearer {token}"})
    assert models.status_code == 200 and {"chat", "restricted"} <= {m["id"] for m in models.json()["data"]}


def test_changed_claims_refresh_the_user(world):
    idp = world["gridco"]
    assert chat(world, idp.token("g1", sub="grid-ben", nationality="GB", us_person=False)).status_code == 200
    assert chat(world, idp.token("g1", sub="grid-ben", nationality="FR", us_person=False)).status_code == 200
    line = next(u for u in run_cli(world["config"], "user", "list").stdout.splitlines() if u.startswith("grid-ben\t"))
    assert "nationality=FR" in line
    report = run_cli(world["config"], "audit", "report").stdout
    assert '"administrator": "oidc:https://login.gridco.example"' in report and '"user.refresh"' in report


@pytest.mark.parametrize("kid", ["l-es", "l-ed"])
def test_es256_and_eddsa_tokens_and_a_trusted_verified_claim(world, kid):
    token = world["labco"].token(kid, aud="other", sub=f"lab-{kid}", nationality="US", us_person=True,
                                 identity_verified=True)
    assert chat(world, token, "restricted").status_code == 200  # labco is trusted for `verified`


def test_bad_tokens_get_401(world):
    idp = world["gridco"]
    ok = dict(sub="grid-cat", nationality="DE", us_person=False)
    cases = {
        "expired_token": idp.token("g1", lifetime=-120, **ok),
        "invalid_audience": idp.token("g1", aud="someone-else", **ok),
        "untrusted_issuer": idp.token("g1", iss="https://evil.example", **ok),
        "invalid_token": idp.token("g1", sub="Not A Slug!", nationality="DE"),
    }
    idp.add_key("unpublished", "RS256", publish=False)
    cases["unknown_signing_key"] = idp.token("unpublished", **ok)
    for code, token in cases.items():
        r = chat(world, token)
        body = r.json()["error"]
        assert r.status_code == 401 and body["code"] == code and body["request_id"], (code, r.text)
        assert token not in world["gw"].log()
    good = idp.token("g1", **ok)
    head, payload, sig = good.split(".")
    forged = f"{head}.{payload}.{sig[:-4]}AAAA"
    assert chat(world, forged).status_code == 401
    assert chat(world, idp.token("g1", sub="grid-usn", nationality="US")).status_code == 401  # no us_person claim
    assert chat(world, "eyJnot.a.token").status_code == 401


def test_key_rotation_is_picked_up(world):
    idp = world["gridco"]
    idp.add_key("g2", "RS256")  # published: the gateway has not seen it yet
    fetched = idp.fetches
    assert chat(world, idp.token("g2", sub="grid-dan", nationality="DE", us_person=False)).status_code == 200
    assert idp.fetches > fetched


def test_an_issuer_asserts_only_users_of_its_own_org(world):
    idp = world["gridco"]
    token = idp.token("g1", sub="grid-eve", nationality="US", us_person=True, org="acme-bank",
                      groups=["critical-infrastructure"], org_groups=["critical-infrastructure"])
    assert chat(world, token).status_code == 200
    denied = chat(world, token, "ci-model")  # acme-bank is critical infrastructure; gridco is not
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "policy_denied"
    line = next(u for u in run_cli(world["config"], "user", "list").stdout.splitlines() if u.startswith("grid-eve\t"))
    assert "\tgridco\t" in line
    # a user id the store holds in another org cannot be claimed
    other = chat(world, idp.token("g1", sub="acme-alice", nationality="US", us_person=True))
    assert other.status_code == 403 and other.json()["error"]["code"] == "wrong_org"
    assert "\tacme-bank\t" in next(u for u in run_cli(world["config"], "user", "list").stdout.splitlines()
                                   if u.startswith("acme-alice\t"))


def test_disabled_token_user_is_refused_within_a_second(world):
    idp = world["gridco"]
    token = idp.token("g1", sub="grid-fay", nationality="DE", us_person=False)
    assert chat(world, token).status_code == 200
    run_cli(world["config"], "user", "disable", "grid-fay")
    r = until(lambda: (x := chat(world, token)).status_code == 403 and x, 1.5)
    assert r and r.json()["error"]["code"] == "user_disabled"
    run_cli(world["config"], "org", "disable", "gridco")
    other = idp.token("g1", sub="grid-gus", nationality="DE", us_person=False)
    r = until(lambda: (x := chat(world, other)).status_code == 403 and x, 1.5)
    assert r and r.json()["error"]["code"] == "org_disabled"
    run_cli(world["config"], "org", "enable", "gridco")
    assert until(lambda: chat(world, other).status_code == 200, 1.5)

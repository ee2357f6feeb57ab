"""Usage limits through the real gateway: in one process, and shared by two replicas on PostgreSQL and Redis.

The Redis server is a real ``redis-server`` started by the test on a free port
(so it can be stopped mid-test without touching anyone else's); the upstream is
the SIMULATED demo model server (a test double).
"""

from __future__ import annotations

import json
import sqlite3
import time

import httpx
import openai
import pytest

from clearance.demo.run import start_in_thread
from clearance.demo.upstream import create_upstream_app
from tests.conftest import free_port, pg_database
from tests.integration.gateway import add_persona, run_cli, start_gateway, write_config


@pytest.fixture(scope="module")
def upstream():
    port = free_port()
    server = start_in_thread(create_upstream_app("sim"), port)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True


def _config(tmp, upstream, db_url, server=None, **limits):
    (tmp / "allow.cedar").write_text('@id("allow-all")\npermit (principal, action, resource);\n')
    return write_config(tmp, db_url, [{"name": "sim", "base_url": upstream}],
                        [{"name": "m", "backends": ["sim"]}, {"name": "other", "backends": ["sim"]}],
                        policy={"files": ["allow.cedar"]}, guard={"enabled": False}, server=server or {},
                        limits={"prices": {"m": {"input_per_mtok": 1000.0, "output_per_mtok": 1000.0}}, **limits})


def _client(gw, key):
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)


def _ask(client, model="m", content="Summarise today's alerts"):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": content}])


def _wait_for_snapshot(gw, before: str) -> None:
    deadline = time.monotonic() + 5
    while httpx.get(gw.url + "/readyz").json()["snapshot"] == before and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.fixture(scope="module")
def single(tmp_path_factory, upstream):
    tmp = tmp_path_factory.mktemp("limits")
    config = _config(tmp, upstream, f"sqlite:///{tmp / 'clearance.db'}", server={"access_log": True})
    keys = {"alice": add_persona(config, "alice", "acme"), "bob": add_persona(config, "bob", "acme"),
            "carol": add_persona(config, "carol", "other-org")}
    gw = start_gateway(config)
    yield {"gw": gw, "config": config, "keys": keys, "db": tmp / "clearance.db"}
    gw.stop()


def test_an_org_request_limit_is_shared_by_its_users_and_refused_with_a_named_429(single):
    gw, config, keys = single["gw"], single["config"], single["keys"]
    before = httpx.get(gw.url + "/readyz").json()["snapshot"]
    out = json.loads(run_cli(config, "limit", "set", "--org", "acme", "--model", "m", "--requests-per-minute", "3",
                             "--json").stdout)
    _wait_for_snapshot(gw, before)
    alice, bob, carol = (_client(gw, keys[u]) for u in ("alice", "bob", "carol"))
    served = [_ask(alice), _ask(bob), _ask(alice)]
    assert len(served) == 3
    with pytest.raises(openai.RateLimitError) as e:
        _ask(bob)
    r = e.value.response
    assert out["id"] in e.value.message and "requests per minute 3" in e.value.message
    assert 0 < int(r.headers["retry-after"]) <= 60
    assert r.headers["x-ratelimit-limit-requests"] == "3" and r.headers["x-ratelimit-remaining-requests"] == "0"
    assert r.json()["error"]["request_id"] == r.headers["x-request-id"]
    _ask(alice, model="other")  # another model, and another org, are not limited
    _ask(carol)
    with sqlite3.connect(single["db"]) as conn:
        bodies = [json.loads(b) for (b,) in conn.execute("SELECT body FROM audit_entries")]
    refused = [b for b in bodies if b["request_id"] == r.headers["x-request-id"]]
    assert refused and refused[0]["decision"] == "rate_limited" and refused[0]["status"] == 429
    assert refused[0]["reasons"] == [out["id"]]
    run_cli(config, "limit", "remove", out["id"])


def test_a_token_budget_stops_the_request_after_the_one_that_crossed_it(single):
    gw, config, keys = single["gw"], single["config"], single["keys"]
    before = httpx.get(gw.url + "/readyz").json()["snapshot"]
    run_cli(config, "limit", "set", "--user", "carol", "--tokens-per-day", "20")
    _wait_for_snapshot(gw, before)
    carol = _client(gw, keys["carol"])
    first = _ask(carol)  # within budget when it starts; its tokens cross it
    assert first.usage.total_tokens > 20
    deadline = time.monotonic() + 5
    while True:  # tokens are counted just after the answer
        try:
            _ask(carol)
        except openai.RateLimitError as e:
            assert "tokens per day 20" in e.message
            break
        assert time.monotonic() < deadline, "the budget never stopped a request"
        time.sleep(0.05)


def test_spend_per_month_and_the_usage_report(single):
    gw, config, keys = single["gw"], single["config"], single["keys"]
    before = httpx.get(gw.url + "/readyz").json()["snapshot"]
    run_cli(config, "limit", "set", "--key", _key_id(keys["bob"]), "--spend-per-month", "0.05")
    _wait_for_snapshot(gw, before)
    bob = _client(gw, keys["bob"])
    _ask(bob)  # about 40 tokens at $1,000 per million: $0.04
    _ask(bob)
    deadline = time.monotonic() + 5
    while True:
        try:
            _ask(bob)
        except openai.RateLimitError as e:
            assert "spend per month $0.05" in e.message
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)  # the last completion entries
    report = json.loads(run_cli(config, "usage", "report", "--by", "org", "--format", "json").stdout)
    by_org = {r["org"]: r for r in report}
    assert by_org["acme"]["requests"] >= 6 and by_org["acme"]["refused"] >= 2
    assert by_org["acme"]["total_tokens"] == by_org["acme"]["prompt_tokens"] + by_org["acme"]["completion_tokens"] > 0
    by_model = {r["model"]: r for r in json.loads(run_cli(config, "usage", "report", "--by", "model", "--format",
                                                          "json").stdout)}
    assert by_model["m"]["spend_usd"] == pytest.approx(by_model["m"]["total_tokens"] * 1000 / 1e6)
    assert by_model["other"]["total_tokens"] > 0 and by_model["other"]["spend_usd"] == 0  # no price: no spend
    csv_out = run_cli(config, "usage", "report", "--by", "key", "--format", "csv").stdout
    assert csv_out.splitlines()[0].startswith("key,requests,refused") and _key_id(keys["bob"]) in csv_out


def test_bad_limits_are_refused_by_the_cli(single):
    config = single["config"]
    for args, message in ((["--org", "nope", "--requests-per-minute", "1"], "no org 'nope'"),
                          (["--org", "acme"], "at least one"),
                          (["--org", "acme", "--user", "alice", "--requests-per-minute", "1"], "exactly one"),
                          (["--org", "acme", "--model", "nope", "--requests-per-minute", "1"], "no model"),
                          (["--org", "acme", "--model", "other", "--spend-per-month", "5"], "needs a price")):
        out = run_cli(config, "limit", "set", *args, check=False)
        assert out.returncode != 0 and message in out.stdout + out.stderr, out


def _key_id(key: str) -> str:
    return key.split("_")[1]


# --------------------------------------------------------------------------- two replicas, Redis

@pytest.fixture
def pg_url():
    yield from pg_database()


def test_two_replicas_share_limits_on_redis_and_follow_on_store_error(tmp_path, upstream, redis_server, pg_url):
    config = _config(tmp_path, upstream, pg_url, redis_url=redis_server["url"], timeout_ms=200)
    key = add_persona(config, "dana", "gridco")
    strict = json.loads(run_cli(config, "limit", "set", "--org", "gridco", "--model", "m",
                                "--requests-per-minute", "10", "--json").stdout)
    run_cli(config, "limit", "set", "--org", "gridco", "--model", "other", "--requests-per-minute", "10",
            "--on-store-error", "allow")
    replicas = [start_gateway(config), start_gateway(config)]
    try:
        clients = [_client(gw, key) for gw in replicas]
        outcomes = []
        for i in range(16):  # alternating between the replicas
            try:
                _ask(clients[i % 2])
                outcomes.append("ok")
            except openai.RateLimitError:
                outcomes.append("429")
        assert outcomes.count("ok") == 10 and outcomes[10:] == ["429"] * 6, outcomes

        redis_server["proc"].kill()
        redis_server["proc"].wait()
        started = time.monotonic()
        with pytest.raises(openai.InternalServerError) as e:  # deny: refused, quickly, saying why
            _ask(clients[0])
        assert e.value.status_code == 503 and strict["id"] in e.value.message
        assert time.monotonic() - started < 5
        assert _ask(clients[1], model="other").choices[0].message.content  # allow: served without counting
    finally:
        for gw in replicas:
            gw.stop()


def test_every_request_has_one_access_log_line_and_tokens_are_counted_by_org(single):
    gw, keys = single["gw"], single["keys"]
    raw = _client(gw, keys["alice"]).chat.completions.with_raw_response.create(
        model="other", messages=[{"role": "user", "content": "hello"}])
    rid, usage = raw.headers["x-request-id"], raw.parse().usage
    streamed = _client(gw, keys["alice"]).chat.completions.with_raw_response.create(
        model="other", stream=True, messages=[{"role": "user", "content": "hello again"}])
    srid = streamed.headers["x-request-id"]
    for _ in streamed.parse():
        pass
    deadline = time.monotonic() + 5
    while True:
        lines = [json.loads(x) for x in gw.log().splitlines() if x.startswith("{")]
        access = [x for x in lines if x.get("logger") == "clearance.access"]
        mine = {x["request_id"]: x for x in access if x["request_id"] in (rid, srid)}
        if len(mine) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert [x["request_id"] for x in access].count(rid) == 1 and [x["request_id"] for x in access].count(srid) == 1
    line = mine[rid]
    assert (line["principal"], line["org"], line["model"], line["backend"], line["status"]) == (
        "alice", "acme", "other", "sim", 200)
    assert line["key"] == _key_id(keys["alice"]) and line["prompt_tokens"] == usage.prompt_tokens
    assert mine[srid]["completion_tokens"] > 0  # a stream's line is written when it ends, with its tokens
    assert keys["alice"] not in gw.log() and "hello again" not in gw.log()
    metrics = httpx.get(gw.url + "/metrics").text
    assert 'clearance_tokens_total{kind="completion",model="other",org="acme"}' in metrics


def test_limits_through_the_admin_api_need_an_operator_and_are_change_entries(single):
    gw, config = single["gw"], single["config"]
    op = json.loads(run_cli(config, "admin", "add", "ops-1", "--role", "operator", "--json").stdout)["token"]
    aud = json.loads(run_cli(config, "admin", "add", "aud-1", "--role", "auditor", "--json").stdout)["token"]
    url = gw.url + "/admin/limits"
    body = {"org": "acme", "model": "other", "tokens_per_minute": 5000}
    assert httpx.post(url, json=body, headers={"authorization": f"Bearer {aud}"}).status_code == 403
    made = httpx.post(url, json=body, headers={"authorization": f"Bearer {op}"})
    assert made.status_code == 201 and made.json()["tokens_per_minute"] == 5000
    listed = httpx.get(url, headers={"authorization": f"Bearer {aud}"}).json()["limits"]
    assert made.json()["id"] in [x["id"] for x in listed]
    bad = httpx.post(url, json={"org": "acme", "user": "alice", "requests_per_minute": 1},
                     headers={"authorization": f"Bearer {op}"})
    assert bad.status_code == 400 and bad.headers["x-request-id"]
    gone = httpx.post(f"{url}/{made.json()['id']}/remove", headers={"authorization": f"Bearer {op}"})
    assert gone.status_code == 200
    assert httpx.post(f"{url}/{made.json()['id']}/remove", headers={"authorization": f"Bearer {op}"}).status_code == 404
    report = json.loads(run_cli(config, "audit", "report").stdout)
    actions = [(c["administrator"], c["action"]) for c in report.get("changes", [])]
    assert ("admin:ops-1", "limit.set") in actions and ("admin:ops-1", "limit.remove") in actions

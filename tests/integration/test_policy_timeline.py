"""The seeds' timeline replayed on the demo world against the live gateway.

Every operator action goes through the real CLI; every request through the
official ``openai`` SDK against ``clearance serve`` (a subprocess, two
workers) in front of SIMULATED upstreams.  A change is asserted on requests
that start after the issue's budget (1 s after the CLI returned), never on
tighter timings.  The guard is off, so guard scores are 0 and only the rules
under test decide.

Covered: suspension of both frontier models for non-US persons; redeployment
of ``frontier-cyber`` to an allow-list of vetted critical-infrastructure orgs;
lifting; an evaluator window that opens and closes with no further change to
the store; a customer approval requested, approved and revoked; a directive
applied while requests are in flight on two workers; and, on PostgreSQL, two
replicas sharing the store that both enforce a directive and its revocation.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import openai
import pytest

from clearance.demo.world import PERSONAS, demo_policy_files
from tests.integration.gateway import Gateway, add_persona, run_cli, start_gateway, start_upstream, write_config

BUDGET_S = 1.0  # the propagation budget: a change is enforced on requests started this long after it
DIRECTIVE_ORGS = ("gridco", "waterworks-co", "rail-signal-co")  # the vetted critical-infrastructure allow-list

SUSPEND = """\
forbid (principal, action, resource in Clearance::ModelFamily::"frontier")
unless { principal.us_person };
"""

REDEPLOY = """\
forbid (principal, action, resource == Clearance::Model::"frontier-general")
unless { principal.us_person };
forbid (principal, action, resource == Clearance::Model::"frontier-cyber")
unless { principal in [%s] };
""" % ", ".join(f'Clearance::Org::"{o}"' for o in DIRECTIVE_ORGS)


# -- the demo world ---------------------------------------------------------------


def demo_world(tmp: Path, db_url: str) -> tuple[Path, dict[str, str], list]:
    """The demo's backends and models (plus an approval-required one and a preview one nobody is permitted),
    guard off; personas made with the CLI."""
    lab, local = start_upstream("frontier-lab-sim"), start_upstream("local-vllm-sim")
    backends = [
        {"name": "frontier-lab-cyber", "kind": "anthropic", "base_url": lab.url, "model": "lab-cyber",
         "api_key_env": "FRONTIER_LAB_API_KEY"},
        {"name": "frontier-lab-general", "kind": "anthropic", "base_url": lab.url, "model": "lab-general",
         "api_key_env": "FRONTIER_LAB_API_KEY"},
        {"name": "local-vllm", "base_url": local.url + "/v1", "model": "open-weights", "self_hosted": True},
    ]
    models = [
        {"name": "frontier-cyber", "family": "frontier", "backends": ["frontier-lab-cyber", "local-vllm"]},
        {"name": "frontier-general", "family": "frontier", "backends": ["frontier-lab-general", "local-vllm"]},
        {"name": "open-local", "family": "open-weight", "backends": ["local-vllm"]},
        {"name": "frontier-next", "family": "frontier-next", "backends": ["frontier-lab-general"],
         "attributes": {"approval_required": True}},
        # No demo policy permits it: only a grant opens it (the evaluator window).
        {"name": "frontier-preview", "family": "frontier", "backends": ["frontier-lab-general"]},
    ]
    config = write_config(tmp, db_url, backends, models, policy={"files": demo_policy_files()},
                          guard={"enabled": False})
    keys = {}
    for persona, (org, groups, nat, us, _verified, use_case) in PERSONAS.items():
        keys[persona] = add_persona(config, persona, org, groups=groups, nationality=nat, us_person=us,
                                    use_case=use_case)
    return config, keys, [lab, local]


GATEWAY_ENV = {"FRONTIER_LAB_API_KEY": "sk-simulated-lab"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo world on SQLite behind one gateway with two workers."""
    tmp = tmp_path_factory.mktemp("timeline")
    config, keys, upstreams = demo_world(tmp, f"sqlite:///{tmp / 'clearance.db'}")
    gw = start_gateway(config, workers=2, env=GATEWAY_ENV)
    try:
        yield {"config": config, "keys": keys, "gw": gw}
    finally:
        gw.stop()
        for u in upstreams:
            u.stop()


# -- asking the gateway ------------------------------------------------------------


@dataclass
class Outcome:
    status: int
    reasons: list[dict]
    code: str = ""
    started: float = 0.0  # time.time() when the request was sent

    @property
    def reason_ids(self) -> list[str]:
        return [r["id"] for r in self.reasons]


def client(gw: Gateway, key: str, fresh_connections: bool = False) -> openai.OpenAI:
    """An SDK client; ``fresh_connections`` opens a connection per request so both workers get traffic."""
    http = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0)) if fresh_connections else None
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0, timeout=30, http_client=http)


def ask(gw: Gateway, key: str, model: str, sdk: openai.OpenAI | None = None) -> Outcome:
    """One chat completion through the openai SDK: 200 and the served text, or 403 and its reasons."""
    sdk = sdk or client(gw, key)
    started = time.time()
    try:
        done = sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": "Status report?"}])
    except openai.PermissionDeniedError as e:
        err = e.body if isinstance(e.body, dict) else {}
        err = err.get("error", err)
        reasons = err.get("reasons") or []
        for r in reasons:
            assert set(r) == {"id", "title", "kind"}, r
        return Outcome(403, reasons, err.get("code", ""), started)
    assert done.choices[0].message.content.startswith("[simulated"), done
    assert done.model == model
    return Outcome(200, [], "", started)


def served(o: Outcome) -> bool:
    return o.status == 200


def denied_by(o: Outcome, rule: str, kind: str | None = None) -> bool:
    """Whether ``o`` is a policy denial whose reasons name ``rule`` (with a title, and ``kind`` when given)."""
    if o.status != 403 or o.code != "policy_denied":
        return False
    return any(r["id"] == rule and r["title"] and (kind is None or r["kind"] == kind) for r in o.reasons)


def settle(since: float) -> None:
    """Wait until the propagation budget after ``since`` (a time.time() when the CLI returned) has passed."""
    delay = since + BUDGET_S - time.time()
    if delay > 0:
        time.sleep(delay)


def cli(config: Path, *args: str) -> float:
    """Run an operator command through the real CLI; return the instant it returned."""
    run_cli(config, *args)
    return time.time()


def write_policy(config: Path, name: str, text: str) -> str:
    path = config.parent / name
    path.write_text(text)
    return str(path)


def iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds")


def check_all(gw: Gateway, keys: dict[str, str], expected: dict[tuple[str, str], object], repeat: int = 3) -> None:
    """Ask each (persona, model) ``repeat`` times on fresh connections (so both workers answer) and check."""
    for (persona, model), want in expected.items():
        sdk = client(gw, keys[persona], fresh_connections=True)
        for _ in range(repeat):
            got = ask(gw, keys[persona], model, sdk)
            ok = want(got) if callable(want) else (got.status == want)
            assert ok, f"{persona} on {model}: {got}"


# -- (a) suspension, (b) redeployment, (c) lifting -----------------------------------


def test_suspension_redeployment_and_lifting(demo):
    gw, keys, config = demo["gw"], demo["keys"], demo["config"]

    # Before: the base policies of the demo.
    check_all(gw, keys, {
        ("intl-researcher", "frontier-general"): 200,
        ("us-analyst", "frontier-general"): 200,
        ("us-defender", "frontier-cyber"): 200,
        ("us-analyst", "frontier-cyber"): 200,
        ("us-analyst", "frontier-preview"): lambda o: denied_by(o, "default-deny", "system"),
    })

    # Impact first: the requests just recorded in the audit log, replayed against the proposed suspension.
    suspend = write_policy(config, "suspend.cedar", SUSPEND)
    impact = json.loads(run_cli(config, "directive", "whatif", suspend, "--since", "1h", "--json").stdout)
    assert impact["source"] == "audit" and impact["requests_replayed"] >= 12
    lost = {(c["user"], c["model"]): c for c in impact["changes"] if c["change"] == "lose"}
    assert set(lost) == {("intl-researcher", "frontier-general")}  # the only non-US person who asked
    assert lost[("intl-researcher", "frontier-general")]["requests"] == 3
    assert lost[("intl-researcher", "frontier-general")]["fallback"] == ["open-local"]
    assert lost[("intl-researcher", "frontier-general")]["fallback_backend"] == "local-vllm"

    # (a) Both frontier models suspended for everyone who is not a US person.
    t = cli(config, "directive", "apply", suspend, "--id", "EO-SUSPEND-1",
            "--title", "Frontier models suspended for non-US persons", "--authority", "Department of Commerce")
    settle(t)
    check_all(gw, keys, {
        ("intl-researcher", "frontier-general"): lambda o: denied_by(o, "EO-SUSPEND-1", "directive"),
        ("intl-researcher", "frontier-cyber"): lambda o: denied_by(o, "EO-SUSPEND-1", "directive"),
        ("intl-researcher", "open-local"): 200,
        ("us-analyst", "frontier-general"): 200,
        ("us-defender", "frontier-cyber"): 200,
        ("gov-evaluator", "frontier-general"): 200,
    })
    denial = ask(gw, keys["intl-researcher"], "frontier-general")
    assert {"id": "EO-SUSPEND-1", "title": "Frontier models suspended for non-US persons",
            "kind": "directive"} in denial.reasons

    # (b) frontier-cyber redeployed to an allow-list of vetted critical-infrastructure orgs; the blanket
    # suspension is replaced by the narrower directive.
    run_cli(config, "directive", "apply", write_policy(config, "redeploy.cedar", REDEPLOY), "--id", "EO-REDEPLOY-1",
            "--title", "frontier-cyber limited to vetted critical-infrastructure organisations")
    t = cli(config, "directive", "revoke", "EO-SUSPEND-1", "--reason", "replaced by EO-REDEPLOY-1")
    settle(t)
    check_all(gw, keys, {
        ("us-defender", "frontier-cyber"): 200,
        ("us-analyst", "frontier-cyber"): lambda o: denied_by(o, "EO-REDEPLOY-1", "directive"),
        ("gov-evaluator", "frontier-cyber"): lambda o: denied_by(o, "EO-REDEPLOY-1", "directive"),
        ("intl-researcher", "frontier-cyber"): lambda o: denied_by(o, "EO-REDEPLOY-1", "directive"),
        ("intl-researcher", "frontier-general"): lambda o: denied_by(o, "EO-REDEPLOY-1", "directive"),
        ("us-analyst", "frontier-general"): 200,
    })
    assert "EO-SUSPEND-1" not in ask(gw, keys["intl-researcher"], "frontier-general").reason_ids

    # (c) Lifted: revoking the directive restores the base policies.
    t = cli(config, "directive", "revoke", "EO-REDEPLOY-1", "--reason", "lifted")
    settle(t)
    check_all(gw, keys, {
        ("intl-researcher", "frontier-general"): 200,
        ("us-defender", "frontier-cyber"): 200,
        ("us-analyst", "frontier-cyber"): 200,
    })
    listed = json.loads(run_cli(config, "directive", "list", "--json").stdout)
    assert {d["id"]: d["status"] for d in listed} == {"EO-SUSPEND-1": "revoked", "EO-REDEPLOY-1": "revoked"}

    # The compliance view: each directive's first enforced denial, provable in the log.
    report = json.loads(run_cli(config, "audit", "report").stdout)["directives"]
    run_cli(config, "audit", "checkpoint")
    for directive_id in ("EO-SUSPEND-1", "EO-REDEPLOY-1"):
        d = report[directive_id]
        assert d["denials_in_window"] > 0 and d["seconds_to_first_denial"] >= 0, d
        proof = json.loads(run_cli(config, "audit", "prove", str(d["first_denial_entry"])).stdout)
        assert directive_id in json.dumps(proof)
        print(f"\n[report] {directive_id}: first enforced denial {d['seconds_to_first_denial']:.3f} s "
              f"after its effective instant (entry {d['first_denial_entry']})")


# -- (d) an evaluator window ------------------------------------------------------------


def test_evaluator_window_opens_and_closes(demo):
    gw, keys, config = demo["gw"], demo["keys"], demo["config"]
    org = PERSONAS["gov-evaluator"][0]
    # Wide margins: two CLI calls must finish before the window opens, even on a loaded 2-core machine.
    opens = datetime.now(timezone.utc) + timedelta(seconds=15)
    closes = opens + timedelta(seconds=8)
    t = cli(config, "grant", "add", "--org", org, "--model", "frontier-preview", "--from", iso(opens),
            "--until", iso(closes), "--reason", "pre-release evaluation")
    grant_id = json.loads(run_cli(config, "grant", "list", "--json").stdout)[-1]["id"]
    settle(t)

    before = ask(gw, keys["gov-evaluator"], "frontier-preview")
    if before.started < opens.timestamp() - 0.5:  # on a very slow machine the window may already be open
        assert denied_by(before, "default-deny", "system"), before

    time.sleep(max(0.0, opens.timestamp() + 0.3 - time.time()))
    inside = [ask(gw, keys["gov-evaluator"], "frontier-preview", client(gw, keys["gov-evaluator"], True))
              for _ in range(3)]
    assert all(served(o) for o in inside if o.started < closes.timestamp() - 0.5), inside
    assert any(o.started < closes.timestamp() - 0.5 for o in inside)
    # The window is for that org only.
    assert denied_by(ask(gw, keys["us-analyst"], "frontier-preview"), "default-deny")

    time.sleep(max(0.0, closes.timestamp() + 0.2 - time.time()))
    after = [ask(gw, keys["gov-evaluator"], "frontier-preview", client(gw, keys["gov-evaluator"], True))
             for _ in range(3)]
    assert all(denied_by(o, "default-deny", "system") for o in after), after
    listed = json.loads(run_cli(config, "grant", "list", "--json").stdout)
    assert [g["id"] for g in listed if g["id"] == grant_id]


# -- (e) a customer approval ---------------------------------------------------------------


def test_customer_approval_granted_then_revoked(demo):
    gw, keys, config = demo["gw"], demo["keys"], demo["config"]
    org = PERSONAS["us-analyst"][0]
    check_all(gw, keys, {("us-analyst", "frontier-next"): lambda o: denied_by(o, "approval-required", "policy")})

    run_cli(config, "approval", "request", "--org", org, "--model", "frontier-next", "--by", "us-analyst",
            "--reason", "fraud analytics")
    requested = [a for a in json.loads(run_cli(config, "approval", "list", "--json").stdout) if a["org"] == org]
    assert [a["status"] for a in requested] == ["requested"]
    approval_id = requested[0]["id"]
    time.sleep(BUDGET_S)
    # A request alone gives nothing.
    assert denied_by(ask(gw, keys["us-analyst"], "frontier-next"), "approval-required")

    t = cli(config, "approval", "approve", approval_id, "--by", "ops", "--reason", "vetted customer")
    settle(t)
    check_all(gw, keys, {
        ("us-analyst", "frontier-next"): 200,
        ("us-defender", "frontier-next"): lambda o: denied_by(o, "approval-required", "policy"),
    })

    t = cli(config, "approval", "revoke", approval_id, "--by", "ops", "--reason", "contract ended")
    settle(t)
    check_all(gw, keys, {("us-analyst", "frontier-next"): lambda o: denied_by(o, "approval-required", "policy")})


# -- (f) a directive applied while requests are in flight on two workers -----------------------


def test_directive_applied_while_requests_in_flight(demo):
    gw, keys, config = demo["gw"], demo["keys"], demo["config"]
    key = keys["intl-researcher"]
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    stop_at: list[float] = [time.time() + 60]  # moved closer once the directive is applied

    def traffic() -> None:
        sdk = client(gw, key, fresh_connections=True)
        while time.time() < stop_at[0]:
            o = ask(gw, key, "frontier-general", sdk)
            with lock:
                outcomes.append(o)

    threads = [threading.Thread(target=traffic, daemon=True) for _ in range(3)]
    for th in threads:
        th.start()
    try:
        time.sleep(1.0)
        cli_started = time.time()
        applied = cli(config, "directive", "apply", write_policy(config, "inflight.cedar", SUSPEND),
                      "--id", "EO-INFLIGHT-1", "--title", "Frontier models suspended for non-US persons")
        stop_at[0] = applied + BUDGET_S + 2.0
    except BaseException:
        stop_at[0] = 0.0  # stop the traffic at once
        raise
    finally:
        for th in threads:
            th.join(timeout=60)
    run_cli(config, "directive", "revoke", "EO-INFLIGHT-1", "--reason", "test over")

    before = [o for o in outcomes if o.started < cli_started - 0.2]
    late = [o for o in outcomes if o.started > applied + BUDGET_S]
    assert before and all(served(o) for o in before), "traffic before the directive should be served"
    assert late, "no request started after the propagation budget"
    assert all(denied_by(o, "EO-INFLIGHT-1", "directive") for o in late), [o for o in late if o.status != 403]
    denials = [o.started - applied for o in outcomes if o.status == 403]
    served_after = [o.started - applied for o in outcomes if served(o) and o.started > applied]
    print(f"\n[propagation] {len(outcomes)} requests; first denial started {min(denials):+.3f} s after "
          f"`directive apply` returned; last request served started "
          f"{max(served_after) if served_after else 0.0:+.3f} s after it")


# -- on PostgreSQL: two replicas sharing the store ------------------------------------------------


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    from tests.conftest import drop_pg_database, make_pg_database

    tmp = tmp_path_factory.mktemp("replicas")
    url = make_pg_database()
    upstreams = []
    gws: list[Gateway] = []
    try:
        config, keys, upstreams = demo_world(tmp, url)
        gws = [start_gateway(config, workers=1, env=GATEWAY_ENV) for _ in range(2)]
        yield {"config": config, "keys": keys, "gws": gws}
    finally:
        for gw in gws:
            gw.stop()
        for u in upstreams:
            u.stop()
        drop_pg_database(url)


def test_two_replicas_on_postgresql_enforce_directive_and_lifting(replicas):
    gws, keys, config = replicas["gws"], replicas["keys"], replicas["config"]
    for gw in gws:
        check_all(gw, keys, {("intl-researcher", "frontier-general"): 200}, repeat=1)

    t = cli(config, "directive", "apply", write_policy(config, "suspend.cedar", SUSPEND), "--id", "EO-PG-1",
            "--title", "Frontier models suspended for non-US persons")
    settle(t)
    for gw in gws:
        check_all(gw, keys, {
            ("intl-researcher", "frontier-general"): lambda o: denied_by(o, "EO-PG-1", "directive"),
            ("intl-researcher", "frontier-cyber"): lambda o: denied_by(o, "EO-PG-1", "directive"),
            ("intl-researcher", "open-local"): 200,
            ("us-analyst", "frontier-general"): 200,
            ("us-defender", "frontier-cyber"): 200,
        }, repeat=2)

    t = cli(config, "directive", "revoke", "EO-PG-1", "--reason", "lifted")
    settle(t)
    for gw in gws:
        check_all(gw, keys, {("intl-researcher", "frontier-general"): 200}, repeat=2)

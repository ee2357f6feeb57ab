"""``directive whatif --since``: recorded decisions from the audit log replayed against a proposed directive."""

from __future__ import annotations

import json
from datetime import timedelta

import yaml
from click.testing import CliRunner
from policy_fixtures import T0

from clearance.audit.log import AuditLog
from clearance.audit.settings import AuditSettings
from clearance.cli import main
from clearance.identity.tables import ApiKey
from clearance.policy.whatif import whatif
from clearance.types import AuditEntry

SUSPEND = ('forbid (principal, action, resource in Clearance::ModelFamily::"frontier")\n'
           "unless { principal.us_person };\n")
NO_CYBER_FOR_ACME = ('forbid (principal in Clearance::Org::"acme-bank", action, '
                     'resource == Clearance::Model::"frontier-cyber");\n')
ORGS = {"us-defender": "gridco", "us-analyst": "acme-bank", "intl-researcher": "eu-lab", "intl-defender": "euro-grid"}


def record(sessions, rows: list[tuple[str, str, int, dict]]) -> None:
    """Append decision entries (user, model, times, guard scores) and one completion entry to the log."""
    log = AuditLog(sessions.kw["bind"], AuditSettings())
    n = 0
    for user, model, times, guard in rows:
        for _ in range(times):
            n += 1
            log.append_sync(AuditEntry(time=T0.isoformat(), request_id=f"r{n}", kind="decision", principal=user,
                                       org=ORGS[user], model=model, decision="allow",
                                       guard={"jailbreak": 0.0, "cyber_offense": 0.0, **guard}))
    log.append_sync(AuditEntry(time=T0.isoformat(), request_id="r1", kind="completion", principal="us-analyst",
                               org="acme-bank", model="frontier-general", decision="allow"))
    log.append_sync(AuditEntry(time=T0.isoformat(), request_id="anon", kind="decision", principal="", org="",
                               model="frontier-general", decision="deny"))


def test_recorded_decisions_are_replayed_per_org_user_and_model(sessions, config):
    record(sessions, [("intl-researcher", "frontier-general", 3, {}), ("intl-researcher", "open-local", 2, {}),
                      ("us-analyst", "frontier-general", 4, {}), ("intl-defender", "frontier-cyber", 1, {})])
    with sessions() as s:
        report = whatif(s, config, SUSPEND, since=timedelta(hours=1))
    assert report.source == "audit" and report.requests == 10
    got = {(c.user, c.model, c.change): c for c in report.changes}
    # Only what was asked for is reported: intl-defender never asked for frontier-general.
    assert set(got) == {("intl-researcher", "frontier-general", "lose"), ("intl-defender", "frontier-cyber", "lose")}
    lost = got[("intl-researcher", "frontier-general", "lose")]
    assert lost.requests == 3 and lost.org == "eu-lab" and "proposed" in lost.reasons
    assert lost.fallback == ("open-local",) and lost.fallback_backend == "local"
    summary = report.summary()
    assert summary["by_org"]["eu-lab"] == {"lose": 1, "gain": 0, "requests_lose": 3, "requests_gain": 0}
    assert summary["by_model"]["frontier-cyber"]["requests_lose"] == 1
    assert summary["by_user"]["euro-grid/intl-defender"]["lose"] == 1
    assert "1 entries without a caller" in report.note


def test_recorded_guard_scores_decide_the_replay(sessions, config):
    # Entries recorded before the cyber tiers hold only cyber_offense: replayed as high risk (fail closed).
    record(sessions, [("us-analyst", "frontier-cyber", 2, {}), ("us-analyst", "frontier-cyber", 3, {"jailbreak": 0.9}),
                      ("us-analyst", "frontier-cyber", 4, {"cyber_offense": 0.9})])
    with sessions() as s:
        report = whatif(s, config, NO_CYBER_FOR_ACME, since=timedelta(hours=1))
    [change] = report.changes
    assert (change.user, change.model, change.change) == ("us-analyst", "frontier-cyber", "lose")
    assert change.requests == 2  # the flagged prompts were denied by the guard policies already


def test_use_case_of_the_callers_key_is_replayed(sessions, config):
    with sessions.begin() as s:
        s.add(ApiKey(id="k1", user_id="us-analyst", key_hash="h1", name="k", created_at=T0,
                     use_case="fraud-analytics"))
    scoped = ('forbid (principal, action, resource == Clearance::Model::"frontier-general")\n'
              'when { context.use_case == "fraud-analytics" };\n')
    record(sessions, [("us-analyst", "frontier-general", 2, {}), ("us-defender", "frontier-general", 1, {})])
    with sessions() as s:
        report = whatif(s, config, scoped, since=timedelta(hours=1))
    assert [(c.user, c.requests) for c in report.changes] == [("us-analyst", 2)]


def test_empty_window_falls_back_to_the_store(sessions, config):
    with sessions() as s:
        report = whatif(s, config, SUSPEND, since=timedelta(hours=1))
        plain = whatif(s, config, SUSPEND)
    assert report.source == "store" and "no decisions recorded" in report.note
    assert [c.to_json() for c in report.changes] == [c.to_json() for c in plain.changes]
    assert {(c.user, c.model) for c in report.changes} >= {("intl-researcher", "frontier-general"),
                                                           ("intl-defender", "frontier-general")}


def test_cli_since(sessions, config, tmp_path):
    record(sessions, [("intl-researcher", "frontier-general", 2, {})])
    raw = config.model_dump(mode="json", exclude={"path"})
    raw["database_url"] = str(sessions.kw["bind"].url)
    cfg = tmp_path / "clearance.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    policy = tmp_path / "suspend.cedar"
    policy.write_text(SUSPEND)
    run = CliRunner().invoke
    r = run(main, ["directive", "whatif", str(policy), "--since", "2h", "--json", "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["source"] == "audit" and out["requests_replayed"] == 2
    assert [(c["user"], c["model"], c["requests"], c["fallback_backend"]) for c in out["changes"]] == [
        ("intl-researcher", "frontier-general", 2, "local")]
    r = run(main, ["directive", "whatif", str(policy), "--since", "2h", "--config", str(cfg)])
    assert r.exit_code == 0 and "recorded requests" in r.output and "via local" in r.output
    r = run(main, ["directive", "whatif", str(policy), "--since", "soon", "--config", str(cfg)])
    assert r.exit_code != 0 and "not a duration" in r.output and "Traceback" not in r.output

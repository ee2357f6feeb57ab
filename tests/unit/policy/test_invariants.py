"""Policy invariants: the YAML format, the checker against the demo world and targeted worlds, and the
partial evaluator held to the engine's decisions on a random world."""

from __future__ import annotations

import random
import sys
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from clearance.config import Config
from clearance.demo.world import PERSONAS, demo_config, demo_invariants_file, demo_policy_files
from clearance.guard.base import CATEGORIES
from clearance.policy.cedartext import builtin_policy_text
from clearance.policy.check import InvariantChecker, check_invariants
from clearance.policy.engine import PolicyContext, build_engine
from clearance.policy.invariants import InvariantError, load_invariants, parse_invariants
from clearance.policy.partial import Ctx, holds
from clearance.policy.world import DirectiveRecord, PolicySource, PolicyWorld, UserRecord, load_models
from clearance.types import Principal

NOW = datetime(2026, 7, 1, tzinfo=timezone.utc)


def demo_world(**changes) -> PolicyWorld:
    config = Config.model_validate(demo_config(Path("/tmp"), 1, 2, 3))
    orgs = {org: tuple(groups) for org, groups, *_ in PERSONAS.values()}
    users = tuple(UserRecord(p, org, nat, us, ver) for p, (org, _g, nat, us, ver, _uc) in PERSONAS.items())
    sources = tuple(PolicySource(f"builtin:{n}", builtin_policy_text(n)) for n in ("guard", "approval"))
    sources += tuple(PolicySource(f, Path(f).read_text()) for f in demo_policy_files())
    world = PolicyWorld(orgs=orgs, groups=tuple(sorted({g for gs in orgs.values() for g in gs})), users=users,
                        models=load_models(config), sources=sources)
    return replace(world, **changes)


def directive(text: str, id: str = "D-1", start: datetime = NOW, end: datetime | None = None) -> DirectiveRecord:
    return DirectiveRecord(id, f"Directive {id}", text, start, end)


DEMO = load_invariants(demo_invariants_file())


def result(report, id_):
    return next(r for r in report.results if r.id == id_)


# -- the file format -------------------------------------------------------------


@pytest.mark.parametrize("raw, message", [
    ([{"id": "x"}], "exactly one of 'never' or 'always'"),
    ({"id": "x"}, "expected a list of invariants"),
    ([{"id": "x", "never": {}, "always": {}}], "exactly one of"),
    ([{"id": "bad id!", "never": {}}], "'id' must be"),
    ([{"id": "x", "never": {}}, {"id": "x", "never": {}}], "used twice"),
    ([{"id": "x", "never": {"resourse": "m"}}], "unknown keys ['resourse']"),
    ([{"id": "x", "never": {"principal": {"citizen": True}}}], "unknown principal keys ['citizen']"),
    ([{"id": "x", "never": {"context": {"guard": {"jailbreak": "about 0.5"}}}}], "is not a comparison"),
    ([{"id": "x", "never": {"context": {"guard": {"jailbreak": ">= 1.5"}}}}], "is not a comparison"),
    ([{"id": "x", "never": {"context": {"guard": {"malware": ">= 0.5"}}}}], "unknown guard category 'malware'"),
    ([{"id": "x", "never": {"principal": {"verified": "yes"}}}], "principal.verified must be true or false"),
    ([{"id": "x", "never": {"action": "delete"}}], "action must be one of"),
    ([{"id": "x", "never": {"context": {"now": {"from": "tomorrow"}}}}], "not an ISO 8601 instant"),
])
def test_bad_files_are_refused_naming_the_entry(raw, message):
    with pytest.raises(InvariantError, match=None) as e:
        parse_invariants(raw, "inv.yaml")
    assert message in str(e.value)
    assert "inv.yaml" in str(e.value)


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(InvariantError, match="cannot read"):
        load_invariants(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("- id: [unclosed\n")
    with pytest.raises(InvariantError, match="not valid YAML"):
        load_invariants(tmp_path / "bad.yaml")


# -- the demo world -------------------------------------------------------------------


def test_demo_invariants_hold_on_the_demo_world():
    report = check_invariants(demo_world(), DEMO, now=NOW)
    assert report.ok, [(r.id, r.status, r.counterexample and r.counterexample.describe()) for r in report.results]
    assert len(report.results) >= 6


def test_blanket_permit_is_a_counterexample_naming_a_non_us_persona_and_frontier_cyber():
    world = demo_world().with_directive(directive("permit (principal, action, resource);", "OPEN-1"))
    report = check_invariants(world, DEMO, now=NOW)
    r = result(report, "frontier-cyber-verified-only")
    assert r.status == "violated"
    ce = r.counterexample
    assert ce.model == "frontier-cyber" and ce.user == "intl-guest" and ce.principal["us_person"] is False
    assert ce.allowed and ce.reasons == ["OPEN-1"]
    # The guard rules are forbids: a permit cannot open prohibited or high-risk cyber work.
    assert result(report, "prohibited-cyber-always-refused").status == "holds"
    assert result(report, "high-risk-cyber-vetted-only").status == "holds"


def test_a_directive_lifting_the_high_risk_tier_for_everyone_is_caught():
    # Another base file without the high-risk rule: high-risk help for anyone verified on frontier-cyber.
    guard = builtin_policy_text("guard")
    no_high = guard[:guard.index('@id("guard-cyber-high-risk")')]
    world = demo_world()
    world = replace(world, sources=tuple(
        PolicySource(s.name, no_high) if s.name == "builtin:guard" else s for s in world.sources))
    r = result(check_invariants(world, DEMO, now=NOW), "high-risk-cyber-vetted-only")
    assert r.status == "violated"
    ce = r.counterexample
    assert ce.guard["cyber_high_risk"] >= 0.5 and ce.guard["cyber_prohibited"] < 0.5 and ce.guard["jailbreak"] < 0.5
    assert ce.user != "us-defender" and ce.allowed


# -- every context that matters ---------------------------------------------------


def test_a_future_directive_is_found_at_its_instant():
    start = NOW + timedelta(days=10)
    world = demo_world().with_directive(directive(
        'forbid (principal, action, resource == Clearance::Model::"frontier-general") unless { principal.us_person };',
        "SUSP-1", start, start + timedelta(days=5)))
    general = parse_invariants([{"id": "general-for-all", "always": {"resource": "frontier-general", "context": {
        "guard": {"jailbreak": "< 0.5", "cyber_low_risk": "< 0.5"}}}}])
    r = check_invariants(world, general, now=NOW).results[0]
    assert r.status == "violated"
    ce = r.counterexample
    assert ce.now == "2026-07-11T00:00:00.000Z" and ce.model == "frontier-general" and not ce.allowed
    assert ce.principal["us_person"] is False and ce.reasons == ["SUSP-1"]
    # Once it has lapsed, nothing is left to find.
    later = start + timedelta(days=6)
    assert check_invariants(world, general, now=later).results[0].status == "holds"
    # The demo's own commitments allow a suspension of the frontier models (the README's walkthrough).
    assert check_invariants(world, DEMO, now=NOW).ok


def test_threshold_between_the_policy_and_the_invariant():
    # A forbid at 0.7 leaves prohibited requests scored in [0.5, 0.7) served: the invariant's own 0.5 counts.
    invs = parse_invariants([{"id": "p", "never": {"context": {"guard": {"cyber_prohibited": ">= 0.5"}}}}])
    guard = builtin_policy_text("guard").replace(
        'cyber_prohibited.greaterThanOrEqual(decimal("0.5"))', 'cyber_prohibited.greaterThanOrEqual(decimal("0.7"))')
    world = demo_world()
    world = replace(world, sources=tuple(
        PolicySource(s.name, guard) if s.name == "builtin:guard" else s for s in world.sources))
    r = check_invariants(world, invs, now=NOW).results[0]
    assert r.status == "violated"
    assert 0.5 <= r.counterexample.guard["cyber_prohibited"] < 0.7
    # nested tiers: a prohibited score is also at least high-risk and low-risk
    g = r.counterexample.guard
    assert g["cyber_low_risk"] >= g["cyber_high_risk"] >= g["cyber_prohibited"] and g["cyber_offense"] == g["cyber_high_risk"]


def test_use_case_read_by_a_directive():
    world = demo_world().with_directive(directive(
        'permit (principal, action, resource == Clearance::Model::"frontier-cyber") when { context.use_case == "red-team" };'))
    r = result(check_invariants(world, DEMO, now=NOW), "frontier-cyber-verified-only")
    assert r.status == "violated" and r.counterexample.use_case == "red-team" and r.counterexample.user == "intl-guest"


def test_set_literals_holding_context_values():
    world = demo_world().with_directive(directive(
        'permit (principal, action, resource == Clearance::Model::"frontier-cyber") '
        'when { ["red-team", "blue-team"].contains(context.use_case) && ["nmap"].containsAny(context.tools) };'))
    r = result(check_invariants(world, DEMO, now=NOW), "frontier-cyber-verified-only")
    assert r.status == "violated"
    assert r.counterexample.use_case in ("red-team", "blue-team") and r.counterexample.tools == ["nmap"]


def test_tools_and_images_read_by_a_directive():
    world = demo_world().with_directive(directive(
        'forbid (principal, action, resource == Clearance::Model::"open-local") '
        'when { context.tools.containsAll(["bash", "python"]) && context.has_images } '
        'unless { principal in Clearance::OrgGroup::"critical-infrastructure" };'))
    r = result(check_invariants(world, DEMO, now=NOW), "everyone-keeps-the-local-model")
    assert r.status == "violated"
    ce = r.counterexample
    assert {"bash", "python"} <= set(ce.tools) and ce.has_images and ce.model == "open-local"
    assert ce.user != "us-defender"
    # A request offering no tools keeps the model: restricted to "none", the invariant holds.
    invs = parse_invariants([{"id": "t", "always": {"resource": "open-local", "context": {
        "tools": "none", "guard": {"jailbreak": "< 0.5", "cyber_low_risk": "< 0.5"}}}}])
    assert check_invariants(world, invs, now=NOW).results[0].status == "holds"


def test_principal_selectors():
    invs = parse_invariants([
        {"id": "eu-lab-no-cyber", "never": {"resource": "frontier-cyber", "principal": {"org": "eu-lab"}}},
        {"id": "non-us-verified-keep-cyber", "always": {"resource": "frontier-cyber",
                                                        "principal": {"us_person": False, "verified": True},
                                                        "context": {"guard": {"cyber_high_risk": "< 0.5",
                                                                              "jailbreak": "< 0.5"}}}},
        {"id": "de-only", "never": {"resource": "frontier-cyber",
                                    "principal": {"nationality": ["DE"], "not": {"verified": True}}}},
    ])
    report = check_invariants(demo_world(), invs, now=NOW)
    assert result(report, "eu-lab-no-cyber").status == "violated"
    assert result(report, "eu-lab-no-cyber").counterexample.user == "intl-researcher"
    assert result(report, "non-us-verified-keep-cyber").status == "holds"
    assert result(report, "de-only").status == "holds"


def test_unsupported_policy_is_undecidable_not_proved():
    world = demo_world().with_directive(directive(
        'permit (principal, action, resource == Clearance::Model::"frontier-cyber") when { context.use_case like "red*" };'))
    r = result(check_invariants(world, DEMO, now=NOW), "frontier-cyber-verified-only")
    assert r.status == "undecidable" and "like" in r.reason
    assert not check_invariants(world, DEMO, now=NOW).ok


def test_equivalent_users_collapse_into_classes():
    many = tuple(UserRecord(f"guest-{i}", "eu-lab", "FR", False, False) for i in range(500))
    world = demo_world()
    world = replace(world, users=world.users + many).with_directive(directive("permit (principal, action, resource);"))
    checker = InvariantChecker(world, now=NOW)
    report = checker.check(DEMO)
    r = result(report, "frontier-cyber-verified-only")
    assert r.status == "violated" and r.counterexample.class_size == 501
    assert report.classes < 40


# -- the partial evaluator against the engine ------------------------------------------


def test_partial_evaluation_agrees_with_the_engine_on_a_random_world():
    sys.path.insert(0, str(Path(__file__).parents[3] / "bench"))
    from policy_decision import T0, make_world

    rng = random.Random(11)
    world = make_world(300, 30, 12, 60, rng)
    engine = build_engine(replace(world, cache_size=0))
    checker = InvariantChecker(world, engine=engine, now=T0)
    classes = {}
    for m in world.models:
        for user, _n, policies in checker._model_classes(m.name, __import__(
                "clearance.policy.check", fromlist=["_Features"])._Features()):
            classes[(user.id, m.name)] = policies
    users = list(world.users)
    checked = 0
    for _ in range(3000):
        u = rng.choice(users)
        m = rng.choice(world.models).name
        action = rng.choice(["invoke", "invoke", "list"])
        policies = checker.w.slice(m)[0]
        f = checker._allowed(u, m, action, policies)
        now = T0 + timedelta(hours=rng.randint(-300, 300), milliseconds=rng.randint(0, 999))
        p, h = sorted(rng.choice([0.0, 0.3, 0.5, 0.7, 1.0]) for _ in range(2))
        lo = max(h, rng.choice([0.0, 0.5, 1.0]))
        jb = rng.choice([0.0, 0.4999, 0.5, 0.9])
        uc = rng.choice(["", "uc-2", "uc-6", "fraud"])
        guard = {"jailbreak": jb, "cyber_prohibited": p, "cyber_high_risk": h, "cyber_low_risk": lo, "cyber_offense": h}
        d = engine.decide(Principal("k", u.id, u.org), m, PolicyContext(now, uc, guard), action=action)
        ms = int((now - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds() * 1000)
        ctx = Ctx(ms, {c: round(guard[c] * 10_000) for c in CATEGORIES if c != "cyber_offense"}, uc, frozenset(), False)
        assert holds(f, ctx) == d.allowed, (u, m, action, guard, uc, now, d.reason_ids)
        checked += 1
    assert checked == 3000

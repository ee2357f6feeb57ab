"""The cyber tiers of the shipped guard policies, decided by the real engine on the demo world's models.

Scores are set by hand (no classifier here): the shipped ``guard.cedar``,
``approval.cedar`` and ``demo.cedar`` compiled with the demo's model config,
``frontier-cyber`` marked ``cyber_capable``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from policy_fixtures import PERSONAS, T0

from clearance.config import Config
from clearance.demo.world import demo_config
from clearance.guard.context import cedar_context, policy_scores
from clearance.identity.tables import Org, User
from clearance.policy.approvals import approve_request, request_approval
from clearance.policy.engine import GUARD_CATEGORIES, PolicyContext, compile_policy
from clearance.types import GuardScores, Principal

ZERO = {c: 0.0 for c in GUARD_CATEGORIES}
PROHIBITED = {"cyber_prohibited": 0.9, "cyber_high_risk": 0.95, "cyber_low_risk": 0.97, "cyber_offense": 0.95}
HIGH_RISK = {"cyber_prohibited": 0.1, "cyber_high_risk": 0.9, "cyber_low_risk": 0.95, "cyber_offense": 0.9}
LOW_RISK = {"cyber_prohibited": 0.01, "cyber_high_risk": 0.1, "cyber_low_risk": 0.9, "cyber_offense": 0.1}
USERS = {**{u: org for u, (org, _, _) in PERSONAS.items()},
         "gridco-contractor": "gridco", "pentest-lead": "redteam-co", "fraud-lead": "fraud-co"}


@pytest.fixture
def config(tmp_path: Path) -> Config:
    raw = demo_config(tmp_path, 9, 9, 9)
    return Config.model_validate({**raw, "path": tmp_path / "clearance.yaml", "state_dir": tmp_path})


@pytest.fixture
def engine(sessions, config):
    with sessions.begin() as s:
        for slug in ("redteam-co", "fraud-co"):
            s.add(Org(slug=slug, name=slug, created_at=T0))
        s.flush()
        # An UNverified user of a critical-infrastructure org.
        s.add(User(id="gridco-contractor", org_slug="gridco", email="c@gridco.example", nationality="US",
                   us_person=True, verified=False, created_at=T0, attributes={}))
        for uid, org in (("pentest-lead", "redteam-co"), ("fraud-lead", "fraud-co")):
            s.add(User(id=uid, org_slug=org, email=f"{uid}@example.org", nationality="US", us_person=True,
                       verified=True, created_at=T0, attributes={}))
        s.flush()
        st = request_approval(s, "redteam-co", "frontier-cyber", requested_by="pentest-lead",
                              reason="authorised tests", use_case="security-testing")
        approve_request(s, st.id, by="ops", reason="contract checked")
        other = request_approval(s, "fraud-co", "frontier-cyber", requested_by="fraud-lead",
                                 reason="fraud models", use_case="fraud-analytics")
        approve_request(s, other.id, by="ops", reason="vetted")
    with sessions() as s:
        return compile_policy(s, config, now=T0 - timedelta(days=1))


def who(uid: str) -> Principal:
    return Principal(key_id="k", user_id=uid, org_id=USERS[uid])


def decide(engine, uid: str, model: str, **scores):
    return engine.decide(who(uid), model, PolicyContext(now=T0, use_case="", guard={**ZERO, **scores}))


def test_frontier_cyber_is_cyber_capable_and_open_to_every_verified_user(engine):
    for uid in ("us-defender", "us-analyst", "intl-researcher", "gov-evaluator", "pentest-lead"):
        d = decide(engine, uid, "frontier-cyber")
        assert d.allowed, (uid, d.reasons)
    d = decide(engine, "gridco-contractor", "frontier-cyber")
    assert not d.allowed and d.reason_ids == ["default-deny"]


@pytest.mark.parametrize("model", ["frontier-cyber", "frontier-general", "open-local"])
@pytest.mark.parametrize("uid", ["us-defender", "us-analyst", "pentest-lead"])
def test_prohibited_is_refused_to_everyone_naming_the_tier(engine, uid, model):
    d = decide(engine, uid, model, **PROHIBITED)
    assert not d.allowed
    assert "guard-cyber-prohibited" in d.reason_ids
    r = next(r for r in d.reasons if r.id == "guard-cyber-prohibited")
    assert r.title.startswith("Prohibited cyber request") and "refused for everyone" in r.title


def test_prohibited_alone_is_refused_even_with_no_other_tier(engine):
    d = decide(engine, "us-defender", "frontier-cyber", cyber_prohibited=0.9)
    assert not d.allowed and "guard-cyber-prohibited" in d.reason_ids


def test_high_risk_served_to_verified_critical_infrastructure_on_the_cyber_model(engine):
    d = decide(engine, "us-defender", "frontier-cyber", **HIGH_RISK)
    assert d.allowed and d.reason_ids == ["demo-cyber-verified"]
    assert decide(engine, "intl-defender", "frontier-cyber", **HIGH_RISK).allowed  # euro-grid: also CI


def test_high_risk_refused_to_other_orgs_naming_the_tier(engine):
    d = decide(engine, "us-analyst", "frontier-cyber", **HIGH_RISK)
    assert not d.allowed and d.reason_ids == ["guard-cyber-high-risk"]
    assert d.reasons[0].title.startswith("High-risk dual-use cyber request")


def test_high_risk_served_to_an_org_approved_for_security_testing(engine):
    d = decide(engine, "pentest-lead", "frontier-cyber", **HIGH_RISK)
    assert d.allowed


def test_high_risk_refused_to_an_org_approved_for_another_use_case(engine):
    d = decide(engine, "fraud-lead", "frontier-cyber", **HIGH_RISK)
    assert not d.allowed and d.reason_ids == ["guard-cyber-high-risk"]
    # ... while its approval still counts as an approval for the model.
    assert decide(engine, "fraud-lead", "frontier-cyber").allowed


def test_high_risk_refused_to_an_unverified_critical_infrastructure_user(engine, sessions):
    # gridco-contractor is not verified, so no permit either; the guard rule still names the tier.
    d = decide(engine, "gridco-contractor", "frontier-cyber", **HIGH_RISK)
    assert not d.allowed and "guard-cyber-high-risk" in d.reason_ids


@pytest.mark.parametrize("uid", ["us-defender", "pentest-lead"])
def test_high_risk_refused_off_cyber_capable_models(engine, uid):
    d = decide(engine, uid, "frontier-general", **HIGH_RISK)
    assert not d.allowed and d.reason_ids == ["guard-cyber-high-risk"]


@pytest.mark.parametrize("model", ["frontier-cyber", "frontier-general"])
@pytest.mark.parametrize("uid", ["us-defender", "us-analyst", "intl-researcher", "gov-evaluator"])
def test_low_risk_is_served(engine, uid, model):
    assert decide(engine, uid, model, **LOW_RISK).allowed


def test_remote_guard_with_only_cyber_offense_is_treated_as_high_risk(engine):
    # A remote guard (Llama Guard S2/S14, a moderation endpoint) knows only cyber_offense.
    scores = policy_scores({"jailbreak": 0.0, "cyber_offense": 0.9})
    assert scores["cyber_high_risk"] == 0.9 and scores["cyber_prohibited"] == 0.0
    assert scores["cyber_low_risk"] == 0.9 and scores["cyber_offense"] == 0.9
    for guard in (scores, {"jailbreak": 0.0, "cyber_offense": 0.9}):  # the pipeline's form, and raw to the engine
        ctx = PolicyContext(now=T0, use_case="", guard=guard)
        assert engine.decide(who("us-defender"), "frontier-cyber", ctx).allowed
        assert engine.decide(who("pentest-lead"), "frontier-cyber", ctx).allowed
        d = engine.decide(who("us-analyst"), "frontier-cyber", ctx)
        assert not d.allowed and d.reason_ids == ["guard-cyber-high-risk"]


def test_policy_scores_are_nested_and_keep_cyber_offense():
    s = policy_scores({"jailbreak": 0.2, "cyber_prohibited": 0.8, "cyber_high_risk": 0.3, "cyber_low_risk": 0.1})
    assert s == {"jailbreak": 0.2, "cyber_prohibited": 0.8, "cyber_high_risk": 0.8, "cyber_low_risk": 0.8,
                 "cyber_offense": 0.8}
    assert policy_scores({}) == ZERO
    bad = policy_scores({"jailbreak": 0.0, "cyber_offense": float("nan")})
    assert bad["cyber_high_risk"] != bad["cyber_high_risk"]  # NaN spreads, so the engine denies


def test_invalid_derived_score_denies(engine):
    d = engine.decide(who("us-defender"), "frontier-cyber",
                      PolicyContext(now=T0, use_case="", guard={"jailbreak": 0.0, "cyber_offense": float("nan")}))
    assert not d.allowed and d.reason_ids == ["guard-score-invalid"]


def test_cedar_context_holds_every_category():
    ctx = cedar_context(GuardScores(scores={"jailbreak": 0.1, "cyber_offense": 0.7}, guard="llama-guard"))
    assert set(GUARD_CATEGORIES) <= set(ctx)
    assert ctx["cyber_high_risk"]["__extn"]["arg"] == "0.7000"
    assert ctx["cyber_prohibited"]["__extn"]["arg"] == "0.0000"


def test_decisions_are_the_same_from_the_cache(engine):
    for _ in range(2):
        assert not decide(engine, "us-analyst", "frontier-cyber", **HIGH_RISK).allowed
        assert decide(engine, "us-analyst", "frontier-cyber", **LOW_RISK).allowed
        assert decide(engine, "us-defender", "frontier-cyber", **HIGH_RISK).allowed


def test_approval_use_cases_are_slugs_and_one_open_request_each(sessions):
    from clearance.policy.errors import Conflict, InvalidRequest

    with sessions.begin() as s:
        with pytest.raises(InvalidRequest):
            request_approval(s, "acme-bank", "frontier-cyber", use_case="Security Testing!")
        plain = request_approval(s, "acme-bank", "frontier-cyber")
        st = request_approval(s, "acme-bank", "frontier-cyber", use_case="security-testing")
        assert (plain.use_case, st.use_case) == ("", "security-testing")
        assert st.to_json()["use_case"] == "security-testing"
        with pytest.raises(Conflict):
            request_approval(s, "acme-bank", "frontier-cyber", use_case="security-testing")

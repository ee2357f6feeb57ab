"""The seed scenarios at the engine level: directives, allow-lists, lifting, evaluator windows, approvals."""

from __future__ import annotations

from datetime import timedelta

import pytest

from clearance.policy.approvals import approve_request, request_approval, revoke_approval
from clearance.policy.directives import apply_directive, revoke_directive
from clearance.policy.engine import PolicyContext, compile_policy
from clearance.policy.grants import add_grant
from clearance.types import Principal

from policy_fixtures import PERSONAS, T0, make_config

SUSPEND_FRONTIER = """
forbid (principal, action, resource in Clearance::ModelFamily::"frontier")
unless { principal.us_person };
"""
SUSPEND_GENERAL = """
forbid (principal, action, resource == Clearance::Model::"frontier-general")
unless { principal.us_person };
"""
CYBER_ALLOW_LIST = """
forbid (principal, action, resource == Clearance::Model::"frontier-cyber")
unless { principal.us_person || principal in Clearance::OrgGroup::"critical-infrastructure" };
"""
ZERO = {"jailbreak": 0.0, "cyber_offense": 0.0}


def who(uid: str) -> Principal:
    return Principal(key_id="k", user_id=uid, org_id=PERSONAS[uid][0])


def ctx(now=T0, **guard) -> PolicyContext:
    return PolicyContext(now=now, use_case="", guard={**ZERO, **guard})


def compiled(sessions, config):
    with sessions() as s:
        return compile_policy(s, config, now=T0 - timedelta(days=1))


def apply(sessions, text, id, **kw):
    with sessions.begin() as s:
        return apply_directive(s, text, id=id, title=kw.pop("title", f"Directive {id}"), **kw)


def test_base_policies(sessions, config):
    eng = compiled(sessions, config)
    # Every verified user may use frontier-cyber; the guard policies decide which cyber requests it serves.
    assert eng.allowed_models(who("us-analyst"), T0) == ["frontier-cyber", "frontier-general", "open-local"]
    assert eng.allowed_models(who("us-defender"), T0) == ["frontier-cyber", "frontier-general", "open-local"]
    d = eng.decide(who("us-analyst"), "frontier-cyber", ctx())
    assert d.allowed and d.reason_ids == ["demo-cyber-verified"]
    d = eng.decide(who("us-analyst"), "frontier-next", ctx())
    assert not d.allowed and d.reason_ids == ["approval-required"]
    assert d.snapshot_hash == eng.hash


def test_suspension_allow_list_and_lifting(sessions, config):
    # Overnight: both frontier models suspended for everyone who is not a US person.
    apply(sessions, SUSPEND_FRONTIER, "EO-1", title="Frontier models suspended for non-US persons",
          effective_at=T0)
    eng = compiled(sessions, config)
    for uid in ("intl-researcher", "intl-defender"):
        for model in ("frontier-general", "frontier-cyber"):
            d = eng.decide(who(uid), model, ctx())
            assert not d.allowed
            assert d.reasons[0].id == "EO-1" and d.reasons[0].kind == "directive"
            assert d.reasons[0].title == "Frontier models suspended for non-US persons"
        assert eng.decide(who(uid), "open-local", ctx()).allowed
    assert eng.decide(who("us-analyst"), "frontier-general", ctx()).allowed
    # The directive is not yet in force a second before its effective instant (same engine, no rebuild).
    assert eng.decide(who("intl-researcher"), "frontier-general", ctx(T0 - timedelta(seconds=1))).allowed

    # frontier-cyber back for the vetted critical-infrastructure orgs: replace EO-1 with two narrower rules.
    with sessions.begin() as s:
        revoke_directive(s, "EO-1", reason="superseded by EO-2 and EO-3")
    apply(sessions, SUSPEND_GENERAL, "EO-2", effective_at=T0)
    apply(sessions, CYBER_ALLOW_LIST, "EO-3", effective_at=T0)
    eng = compiled(sessions, config)
    assert eng.decide(who("intl-defender"), "frontier-cyber", ctx()).allowed
    d = eng.decide(who("intl-defender"), "frontier-general", ctx())
    assert not d.allowed and d.reason_ids == ["EO-2"]
    d = eng.decide(who("intl-researcher"), "frontier-cyber", ctx())
    assert not d.allowed and "EO-3" in d.reason_ids

    # Lifting.
    with sessions.begin() as s:
        revoke_directive(s, "EO-2", reason="lifted")
        revoke_directive(s, "EO-3", reason="lifted")
    eng = compiled(sessions, config)
    assert eng.decide(who("intl-researcher"), "frontier-general", ctx()).allowed
    assert eng.decide(who("intl-defender"), "frontier-cyber", ctx()).allowed


def test_directive_expiry_is_a_condition_on_now(sessions, config):
    apply(sessions, SUSPEND_FRONTIER, "EO-9", effective_at=T0, expires_at=T0 + timedelta(days=3))
    eng = compiled(sessions, config)
    p = who("intl-researcher")
    assert eng.decide(p, "frontier-general", ctx(T0 - timedelta(milliseconds=1))).allowed
    assert not eng.decide(p, "frontier-general", ctx(T0)).allowed
    assert not eng.decide(p, "frontier-general", ctx(T0 + timedelta(days=3) - timedelta(milliseconds=1))).allowed
    assert eng.decide(p, "frontier-general", ctx(T0 + timedelta(days=3))).allowed


def test_evaluator_window_opens_and_closes(sessions, tmp_path):
    config = make_config(tmp_path)
    config.models.append(config.models[2].model_copy(update={"name": "frontier-preview", "family": "frontier"}))
    with sessions.begin() as s:
        add_grant(s, "standards-lab", "frontier-preview", T0, T0 + timedelta(days=30), reason="pre-release evaluation")
    eng = compiled(sessions, config)
    p = who("gov-evaluator")
    before = eng.decide(p, "frontier-preview", ctx(T0 - timedelta(minutes=1)))
    assert not before.allowed and before.reason_ids == ["default-deny"]
    inside = eng.decide(p, "frontier-preview", ctx(T0 + timedelta(days=1)))
    assert inside.allowed and inside.reasons[0].kind == "grant"
    assert "frontier-preview" in eng.allowed_models(p, T0 + timedelta(days=29))
    after = eng.decide(p, "frontier-preview", ctx(T0 + timedelta(days=30)))
    assert not after.allowed
    assert "frontier-preview" not in eng.allowed_models(p, T0 + timedelta(days=30))
    # Other orgs never had the window.
    assert not eng.decide(who("us-analyst"), "frontier-preview", ctx(T0 + timedelta(days=1))).allowed


def test_approval_granted_then_revoked(sessions, config):
    p = who("us-analyst")
    with sessions.begin() as s:
        req = request_approval(s, "acme-bank", "frontier-next", requested_by="us-analyst", reason="fraud models")
    eng = compiled(sessions, config)
    d = eng.decide(p, "frontier-next", ctx())
    assert not d.allowed and d.reason_ids == ["approval-required"]

    with sessions.begin() as s:
        approve_request(s, req.id, by="ops", reason="vetted customer")
    eng = compiled(sessions, config)
    d = eng.decide(p, "frontier-next", ctx())
    assert d.allowed and d.reasons[0].kind == "approval" and d.reasons[0].id == f"approval:{req.id}"
    # Another org is still gated.
    assert not eng.decide(who("us-defender"), "frontier-next", ctx()).allowed

    with sessions.begin() as s:
        revoke_approval(s, req.id, by="ops", reason="contract ended")
    eng = compiled(sessions, config)
    assert not eng.decide(p, "frontier-next", ctx()).allowed


def test_approval_needed_even_when_a_policy_permits(sessions, config):
    apply(sessions, 'permit (principal, action, resource == Clearance::Model::"frontier-next");', "OPEN-NEXT",
          effective_at=T0 - timedelta(days=1))
    eng = compiled(sessions, config)
    d = eng.decide(who("us-analyst"), "frontier-next", ctx())
    assert not d.allowed and d.reason_ids == ["approval-required"]
    assert d.reasons[0].title  # a public title callers can read


@pytest.mark.parametrize("score,allowed", [(0.0, True), (0.4999, True), (0.5, False), (0.93, False)])
def test_jailbreak_threshold(sessions, config, score, allowed):
    eng = compiled(sessions, config)
    for _ in range(2):  # second pass is served from the decision cache
        d = eng.decide(who("us-analyst"), "frontier-general", ctx(jailbreak=score))
        assert d.allowed is allowed
        if not allowed:
            assert d.reason_ids == ["guard-jailbreak"]


def test_cyber_offense_alone_is_read_as_high_risk(sessions, config):
    # A guard that reports only cyber_offense (no tiers) is held to the high-risk rule (fail closed).
    eng = compiled(sessions, config)
    assert eng.decide(who("us-defender"), "frontier-cyber", ctx(cyber_offense=0.97)).allowed
    d = eng.decide(who("us-analyst"), "frontier-cyber", ctx(cyber_offense=0.97))
    assert not d.allowed and d.reason_ids == ["guard-cyber-high-risk"]
    assert eng.decide(who("us-analyst"), "frontier-cyber", ctx(cyber_offense=0.1)).allowed
    # Off cyber-capable models, high-risk requests are refused to everyone.
    d = eng.decide(who("us-defender"), "frontier-general", ctx(cyber_offense=0.97))
    assert not d.allowed and d.reason_ids == ["guard-cyber-high-risk"]
    assert eng.decide(who("us-analyst"), "frontier-general", ctx(cyber_offense=0.1)).allowed


def test_hash_tracks_content(sessions, config):
    a, b = compiled(sessions, config), compiled(sessions, config)
    assert a.hash == b.hash and len(a.hash) == 64
    apply(sessions, SUSPEND_FRONTIER, "EO-1", effective_at=T0)
    assert compiled(sessions, config).hash != a.hash

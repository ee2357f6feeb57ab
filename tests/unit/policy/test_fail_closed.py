"""Fail-closed behaviour: unknown callers and models, bad guard scores, evaluation errors, hazardous forbids."""

from __future__ import annotations

import json
import math

import cedarpy
import pytest
from policy_fixtures import PERSONAS, T0

from clearance.policy.cedartext import PolicyTextError, builtin_policy_text, check_policy_text, schema
from clearance.policy.directives import apply_directive
from clearance.policy.engine import PolicyContext, build_engine, compile_policy
from clearance.policy.errors import InvalidRequest
from clearance.policy.tables import Directive
from clearance.policy.world import ModelRecord, PolicyCompileError, PolicySource, PolicyWorld, UserRecord
from clearance.types import Principal

ZERO = {"jailbreak": 0.0, "cyber_offense": 0.0}


def who(uid: str) -> Principal:
    return Principal(key_id="k", user_id=uid, org_id=PERSONAS[uid][0])


def small_world(*extra_sources: str) -> PolicyWorld:
    sources = [PolicySource(f"builtin:{n}", builtin_policy_text(n)) for n in ("guard", "approval", "demo")]
    sources += [PolicySource(f"extra{i}.cedar", t) for i, t in enumerate(extra_sources)]
    return PolicyWorld(
        orgs={"acme-bank": ()}, groups=(), users=(UserRecord("us-analyst", "acme-bank", "US", True, True),),
        models=(ModelRecord("frontier-general", "frontier"), ModelRecord("open-local", "open")),
        sources=tuple(sources),
    )


@pytest.fixture
def engine(sessions, config):
    with sessions() as s:
        return compile_policy(s, config, now=T0)


@pytest.mark.parametrize("principal,model,reason", [
    (Principal("k", "nobody", "acme-bank"), "frontier-general", "unknown-principal"),
    (Principal("k", "us-analyst", "gridco"), "frontier-general", "principal-mismatch"),
    (Principal("k", "us-analyst", "acme-bank"), "no-such-model", "unknown-model"),
])
def test_unknown_inputs_deny(engine, principal, model, reason):
    d = engine.decide(principal, model, PolicyContext(T0, "", ZERO))
    assert not d.allowed and d.reason_ids == [reason] and d.reasons[0].kind == "system"


@pytest.mark.parametrize("guard,reason", [
    ({"jailbreak": 0.0}, "guard-score-missing"),
    ({}, "guard-score-missing"),
    ({"jailbreak": math.nan, "cyber_offense": 0.0}, "guard-score-invalid"),
    ({"jailbreak": 1.5, "cyber_offense": 0.0}, "guard-score-invalid"),
    ({"jailbreak": "high", "cyber_offense": 0.0}, "guard-score-invalid"),
])
def test_bad_guard_scores_deny(engine, guard, reason):
    d = engine.decide(who("us-analyst"), "frontier-general", PolicyContext(T0, "", guard))
    assert not d.allowed and d.reason_ids == [reason]


def test_any_evaluation_error_denies():
    # A permit that reads an attribute of an entity that is not in the store errors at run time.
    erroring = '@id("ghost") @title("t")\npermit (principal, action, resource) when { Clearance::User::"ghost".us_person };'
    eng = build_engine(small_world(erroring))
    d = eng.decide(who("us-analyst"), "frontier-general", PolicyContext(T0, "", ZERO))
    assert not d.allowed  # demo-general-models alone would allow
    assert d.reason_ids[0] == "evaluation-error" and "ghost" in d.reason_ids and d.errors


def test_erroring_forbid_would_fail_open_in_cedar_so_it_is_refused():
    forbid = 'forbid (principal, action, resource) when { Clearance::User::"ghost".us_person };'
    permit = 'permit (principal, action, resource);'
    # Plain Cedar skips the erroring forbid and allows: the hazard is real.
    ents = cedarpy.Entities.from_json_str(json.dumps([
        {"uid": {"type": "Clearance::User", "id": "u"}, "attrs": {}, "parents": []}]))
    req = {"principal": 'Clearance::User::"u"', "action": 'Clearance::Action::"invoke"',
           "resource": 'Clearance::Model::"m"', "context": {}}
    assert cedarpy.is_authorized(req, permit + "\n" + forbid, ents).allowed
    # Clearance refuses it at apply time, naming the line and column.
    with pytest.raises(PolicyTextError) as e:
        check_policy_text(permit + "\n" + forbid)
    assert e.value.problems[0].line == 2 and "fail open" in e.value.problems[0].message
    # ... and in a base policy file, which fails the compile (the old snapshot stays in use).
    with pytest.raises(PolicyCompileError):
        build_engine(small_world('@id("x") @title("t")\n' + forbid))


@pytest.mark.parametrize("condition", [
    "context.now.offset(duration(\"1h\")) > datetime(\"2025-01-01\")",
    "principal.nationality == \"\" && 9223372036854775807 + 1 > 0",
    "Clearance::User::\"ghost\".verified",
])
def test_hazardous_forbids_are_rejected(sessions, condition):
    text = f"forbid (principal, action, resource)\nwhen {{ {condition} }};"
    with sessions() as s, pytest.raises(InvalidRequest) as e:
        apply_directive(s, text, id="BAD", title="bad")
    assert "fail open" in str(e.value)


def test_safe_forbids_are_accepted():
    check_policy_text(
        'forbid (principal, action, resource in Clearance::ModelFamily::"frontier")\n'
        'when { context.now >= datetime("2025-03-01T00:00:00Z") && context.use_case like "*weapons*" }\n'
        'unless { principal.us_person || (principal.verified && principal.nationality == "GB") };'
    )


def test_stored_directive_that_no_longer_validates_fails_the_compile(sessions, config):
    with sessions.begin() as s:
        s.add(Directive(id="OLD", title="old", authority="", reference="", issued_at=T0, effective_at=T0,
                        text="forbid (principal, action, resource) when { principal.clearance_level > 2 };",
                        revoked_reason=""))
    with sessions() as s, pytest.raises(PolicyCompileError) as e:
        compile_policy(s, config, now=T0)
    assert "OLD" in str(e.value)


def test_validation_error_has_line_and_column(sessions):
    text = (
        "// suspend for non-US persons\n"
        "forbid (principal, action, resource)\n"
        "unless { principal.us_persn };\n"
    )
    with sessions() as s, pytest.raises(InvalidRequest) as e:
        apply_directive(s, text, id="TYPO", title="typo")
    col = text.splitlines()[2].index("us_persn") + 1
    assert f"line 3, column {col}" in str(e.value) and "us_persn" in str(e.value)


def test_syntax_error_has_line_and_column():
    text = 'permit (principal, action, resource)\n  when { context.guard.jailbreak > 0.5 };'
    with pytest.raises(PolicyTextError) as e:
        check_policy_text(text)
    p = e.value.problems[0]
    assert (p.line, p.column) == (2, text.splitlines()[1].index("5") + 1)


def test_unterminated_and_template_text_rejected():
    with pytest.raises(PolicyTextError, match="not terminated"):
        check_policy_text("permit (principal, action, resource)")
    with pytest.raises(PolicyTextError, match="templates"):
        check_policy_text("permit (principal in ?principal, action, resource);")


def test_base_policy_without_id_fails_compile():
    with pytest.raises(PolicyCompileError, match="@id"):
        build_engine(small_world("permit (principal, action, resource);"))


def test_unknown_model_attribute_fails_compile():
    w = small_world()
    bad = PolicyWorld(orgs=w.orgs, groups=w.groups, users=w.users, sources=w.sources,
                      models=(ModelRecord("m", "", {"secret_level": 3}),))
    with pytest.raises(PolicyCompileError, match="secret_level"):
        build_engine(bad)


def test_shipped_policies_validate_and_every_policy_has_id_and_title():
    for name in ("guard", "approval", "demo"):
        est = check_policy_text(builtin_policy_text(name), allow_templates=True)
        for pol in [*est["staticPolicies"].values(), *est["templates"].values()]:
            assert pol["annotations"].get("id") and pol["annotations"].get("title")


def test_schema_guard_categories_match_engine():
    from clearance.policy.engine import GUARD_CATEGORIES

    # A context with exactly GUARD_CATEGORIES validates against the shipped schema.
    ctx = {"now": {"__extn": {"fn": "datetime", "arg": "2025-01-01T00:00:00Z"}}, "use_case": "",
           "guard": {c: {"__extn": {"fn": "decimal", "arg": "0.0"}} for c in GUARD_CATEGORIES},
           "tools": ["bash"], "has_images": False}
    req = {"principal": 'Clearance::User::"u"', "action": 'Clearance::Action::"invoke"',
           "resource": 'Clearance::Model::"m"', "context": ctx}
    ents = cedarpy.Entities.from_json_str("[]")
    res = cedarpy.is_authorized(req, "permit (principal, action, resource);", ents, schema())
    assert res.allowed, res.diagnostics.errors

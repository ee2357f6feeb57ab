"""The invariant guard around control-plane changes, on a real SQLite store: refuse, override, fail closed."""

from __future__ import annotations

import json

import pytest
from policy_fixtures import make_config

from clearance.policy.directives import apply_directive, list_directives
from clearance.policy.enforce import InvariantCheckError, InvariantViolation, invariant_guard, list_overrides
from clearance.policy.errors import InvalidRequest

SUSPEND = 'forbid (principal, action, resource == Clearance::Model::"frontier-general") unless { principal.us_person };'
INVARIANTS = [{"id": "general-for-all", "always": {"resource": "frontier-general",
                                                   "context": {"guard": {"jailbreak": "< 0.5",
                                                                         "cyber_low_risk": "< 0.5"}}}}]


def configured(tmp_path, invariants=INVARIANTS):
    path = tmp_path / "inv.yaml"
    path.write_text(json.dumps(invariants) if not isinstance(invariants, str) else invariants)
    return make_config(tmp_path, invariants=str(path))


def change(sessions, config, text=SUSPEND, id="D-1", overrides=(), reason=""):
    with sessions.begin() as s:
        with invariant_guard(s, config, f"directive apply {id}", overrides, reason, "ops"):
            apply_directive(s, text, id=id, title=id)


def test_breaking_change_is_refused_and_rolled_back(sessions, tmp_path):
    config = configured(tmp_path)
    with pytest.raises(InvariantViolation) as e:
        change(sessions, config)
    ce = e.value.results[0].counterexample
    assert "general-for-all" in str(e.value) and ce.user in str(e.value)
    assert ce.principal["us_person"] is False and ce.model == "frontier-general" and not ce.allowed
    with sessions() as s:
        assert list_directives(s) == []


def test_override_needs_a_known_id_and_a_reason_and_is_recorded(sessions, tmp_path):
    config = configured(tmp_path)
    with pytest.raises(InvalidRequest, match="needs a reason"):
        change(sessions, config, overrides=["general-for-all"])
    with pytest.raises(InvalidRequest, match="no invariant nope"):
        change(sessions, config, overrides=["nope"], reason="x")
    change(sessions, config, overrides=["general-for-all"], reason="export control order")
    with sessions() as s:
        assert [d.id for d in list_directives(s)] == ["D-1"]
        (o,) = list_overrides(s)
    assert o["invariant"] == "general-for-all" and o["by"] == "ops" and o["reason"] == "export control order"
    assert o["counterexample"]["status"] == "violated"


def test_a_violation_that_predates_the_change_does_not_block_it(sessions, tmp_path):
    config = configured(tmp_path)
    change(sessions, config, overrides=["general-for-all"], reason="first")
    # Unrelated change: the invariant was already violated, so it is not this change's doing.
    change(sessions, config, text='forbid (principal, action, resource == Clearance::Model::"open-local") '
                                  'when { principal.nationality == "XX" };', id="D-2")
    with sessions() as s:
        assert [d.id for d in list_directives(s)] == ["D-1", "D-2"]


def test_fail_closed_on_an_unreadable_file_and_an_undecidable_invariant(sessions, tmp_path):
    with pytest.raises(InvariantCheckError, match="cannot be read"):
        change(sessions, configured(tmp_path, "- id: [broken\n"))
    config = configured(tmp_path)
    with pytest.raises(InvariantViolation, match="undecidable"):
        change(sessions, config, text='forbid (principal, action, resource == Clearance::Model::"frontier-general") '
                                      'when { context.use_case like "ex*" };', id="D-3")


def test_without_invariants_nothing_is_checked_and_overrides_are_refused(sessions, tmp_path):
    config = make_config(tmp_path)
    change(sessions, config)
    with pytest.raises(InvalidRequest, match="names no invariants file"):
        change(sessions, config, id="D-2", overrides=["x"], reason="y")

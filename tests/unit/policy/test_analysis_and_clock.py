"""Decision-cache keys (context breakpoints) and the time helpers they rely on."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from policy_fixtures import T0

from clearance.policy.analysis import context_breakpoints, decimal_units
from clearance.policy.cedartext import to_est
from clearance.policy.clock import cedar_datetime, epoch_ms, parse_cedar_datetime, parse_duration, parse_instant
from clearance.policy.engine import PolicyContext, build_engine
from clearance.policy.world import DirectiveRecord, ModelRecord, PolicySource, PolicyWorld, UserRecord
from clearance.types import Principal


def policies(text: str) -> list[dict]:
    return list(to_est(text)["staticPolicies"].values())


def test_breakpoints_collect_literals():
    bp = context_breakpoints(policies(
        'forbid (principal, action, resource) when { context.guard.jailbreak.greaterThanOrEqual(decimal("0.5")) };\n'
        'permit (principal, action, resource) when { context.now >= datetime("2025-03-01") && '
        'datetime("2025-04-01T00:00:00+0100") > context.now && context.use_case == "x" };'
    ))
    assert bp is not None
    assert bp.thresholds == {"jailbreak": (5000,)}
    assert bp.instants == (epoch_ms(datetime(2025, 3, 1, tzinfo=timezone.utc)),
                           epoch_ms(datetime(2025, 3, 31, 23, tzinfo=timezone.utc)))
    # Below, at and above a threshold are three different buckets.
    assert len({bp.guard_bucket("jailbreak", v) for v in (4999, 5000, 5001)}) == 3
    assert bp.guard_bucket("jailbreak", 0) == bp.guard_bucket("jailbreak", 4999)


@pytest.mark.parametrize("cond", [
    "context.now.toDate() == datetime(\"2025-03-01\")",
    "context.guard.jailbreak.lessThan(context.guard.cyber_offense)",
    "context == {}",
])
def test_other_context_uses_disable_caching(cond):
    assert context_breakpoints(policies(f"permit (principal, action, resource) when {{ {cond} }};")) is None


def test_uncacheable_engine_still_decides_time_correctly():
    permit_on_day = ('@id("day") @title("Only on 1 March")\n'
                     'permit (principal, action, resource) when { context.now.toDate() == datetime("2025-03-01") };')
    world = PolicyWorld(orgs={"o": ()}, groups=(), users=(UserRecord("u", "o"),), models=(ModelRecord("m"),),
                        sources=(PolicySource("day.cedar", permit_on_day),))
    eng = build_engine(world)
    assert not eng.cacheable
    p, z = Principal("k", "u", "o"), {"jailbreak": 0.0, "cyber_offense": 0.0}
    day = datetime(2025, 3, 1, 8, tzinfo=timezone.utc)
    assert eng.decide(p, "m", PolicyContext(day, "", z)).allowed
    assert not eng.decide(p, "m", PolicyContext(day + timedelta(days=1), "", z)).allowed


def test_cached_engine_honours_window_edges_in_any_order():
    world = PolicyWorld(
        orgs={"o": ()}, groups=(), users=(UserRecord("u", "o"),), models=(ModelRecord("m"),),
        sources=(PolicySource("all.cedar", '@id("all") @title("all")\npermit (principal, action, resource);'),),
        directives=(DirectiveRecord("D", "window", "forbid (principal, action, resource);", T0, T0 + timedelta(hours=1)),),
    )
    eng = build_engine(world)
    assert eng.cacheable
    p, z = Principal("k", "u", "o"), {"jailbreak": 0.0, "cyber_offense": 0.0}
    times = [T0 + timedelta(minutes=30), T0 - timedelta(milliseconds=1), T0 + timedelta(hours=1), T0,
             T0 + timedelta(minutes=31), T0 - timedelta(days=1)]
    expected = [False, True, True, False, False, True]
    for _ in range(2):
        assert [eng.decide(p, "m", PolicyContext(t, "", z)).allowed for t in times] == expected


def test_decimal_units():
    assert decimal_units("0.5") == 5000 and decimal_units("1.0") == 10000 and decimal_units("-0.25") == -2500
    assert decimal_units("0.55555") is None and decimal_units("x") is None


def test_cedar_datetime_round_trip():
    t = datetime(2025, 3, 1, 12, 30, 15, 123456, tzinfo=timezone.utc)
    assert cedar_datetime(t) == "2025-03-01T12:30:15.123Z"
    assert parse_cedar_datetime(cedar_datetime(t)) == epoch_ms(t)
    assert parse_cedar_datetime("2025-13-01") is None


def test_user_facing_parsers():
    assert parse_instant("2025-03-01T00:00:00Z") == datetime(2025, 3, 1, tzinfo=timezone.utc)
    assert parse_instant("2025-03-01T01:00:00+01:00") == datetime(2025, 3, 1, tzinfo=timezone.utc)
    assert parse_duration("7d") == timedelta(days=7) and parse_duration("30m") == timedelta(minutes=30)
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_instant("next tuesday")
    with pytest.raises(ValueError, match="duration"):
        parse_duration("soon")


def test_tool_and_image_context_are_keyed_exactly_when_read():
    bp = context_breakpoints(policies(
        'forbid (principal, action, resource) when { context.tools.contains("bash") || context.has_images };'))
    assert bp is not None and bp.reads == {"tools", "has_images"}
    assert context_breakpoints(policies("permit (principal, action, resource);")).reads == frozenset()


@pytest.mark.parametrize("cached", [True, False])
def test_a_rule_can_forbid_a_tool_and_images(cached):
    no_shell = ('@id("no-shell") @title("No shell tool on this model")\n'
                'forbid (principal, action, resource) when { context.tools.containsAny(["bash", "shell"]) };\n'
                '@id("no-images") @title("No images")\n'
                'forbid (principal, action, resource) when { context.has_images };\n'
                '@id("all") @title("all")\npermit (principal, action, resource)')
    # The same rules on an engine whose decisions are not cached (the permit reads the context opaquely).
    no_shell += ";" if cached else ' when { context.now.toDate() != datetime("1999-01-01") };'
    world = PolicyWorld(orgs={"o": ()}, groups=(), users=(UserRecord("u", "o"),), models=(ModelRecord("m"),),
                        sources=(PolicySource("tools.cedar", no_shell),))
    eng = build_engine(world)
    assert eng.cacheable is cached
    p, z = Principal("k", "u", "o"), {"jailbreak": 0.0, "cyber_offense": 0.0}
    for _ in range(2):  # the second round is answered from the cache when there is one
        assert eng.decide(p, "m", PolicyContext(T0, "", z, ("read_file",))).allowed
        denied = eng.decide(p, "m", PolicyContext(T0, "", z, ("bash", "read_file")))
        assert not denied.allowed and denied.reason_ids == ["no-shell"]
        assert eng.decide(p, "m", PolicyContext(T0, "", z, (), True)).reason_ids == ["no-images"]
        assert eng.decide(p, "m", PolicyContext(T0, "", z)).allowed


def test_tool_names_that_are_not_strings_are_denied():
    world = PolicyWorld(orgs={"o": ()}, groups=(), users=(UserRecord("u", "o"),), models=(ModelRecord("m"),),
                        sources=(PolicySource("all.cedar", '@id("all") @title("all")\npermit (principal, action, resource);'),))
    d = build_engine(world).decide(Principal("k", "u", "o"), "m",
                                   PolicyContext(T0, "", {"jailbreak": 0.0, "cyber_offense": 0.0}, (1,)))
    assert not d.allowed and d.reason_ids == ["context-invalid"]

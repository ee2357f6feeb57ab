"""Benchmark: policy decision latency with 10,000 users, 500 orgs, 50 models and 200 directives.

Prints one JSON object.  ``uncached`` is every decision evaluated by Cedar
(decision cache off); ``cached`` is the same engine with its decision cache,
replaying a request mix where callers repeat (as real traffic does), with
guard scores and request times varying so cache keys change with them;
``allowed_models`` is one ``/v1/models`` listing for a cold caller.

    python bench/policy_decision.py [--users 10000] [--orgs 500] [--models 50] [--directives 200] [--samples 20000]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from clearance.policy.cedartext import builtin_policy_text
from clearance.policy.engine import PolicyContext, build_engine
from clearance.policy.world import (
    ApprovalRecord, DirectiveRecord, GrantRecord, ModelRecord, PolicySource, PolicyWorld, UserRecord,
)
from clearance.types import Principal

T0 = datetime(2025, 3, 1, tzinfo=timezone.utc)
NATIONS = ["US", "GB", "DE", "FR", "JP", "IN", "BR", "CA", "AU", "KR"]


def make_world(n_users: int, n_orgs: int, n_models: int, n_directives: int, rng: random.Random) -> PolicyWorld:
    groups = ("critical-infrastructure", "finance", "health", "government", "research")
    orgs = {f"org-{i:04d}": tuple(sorted(rng.sample(groups, rng.randint(0, 2)))) for i in range(n_orgs)}
    org_names = sorted(orgs)
    users = tuple(
        UserRecord(f"user-{i:05d}", rng.choice(org_names), rng.choice(NATIONS), rng.random() < 0.6, rng.random() < 0.9)
        for i in range(n_users)
    )
    families = ["frontier", "open", "code", "vision", "audio"]
    models = tuple(
        ModelRecord(f"model-{i:02d}", families[i % len(families)],
                    {"approval_required": i % 10 == 0, "cyber_capable": i % 7 == 0})
        for i in range(n_models)
    )
    base = "\n".join([
        '@id("everyone-open") @title("Everyone may use open models")',
        'permit (principal, action, resource in Clearance::ModelFamily::"open");',
        '@id("verified-all") @title("Verified users may use every model")',
        'permit (principal, action, resource) when { principal.verified };',
    ])
    sources = tuple(PolicySource(f"builtin:{n}", builtin_policy_text(n)) for n in ("guard", "approval")) + (
        PolicySource("bench.cedar", base),)
    directives = []
    for i in range(n_directives):
        m = rng.choice(models).name
        nat = rng.choice(NATIONS[1:])
        g = rng.choice(groups)
        kind = i % 4
        if kind == 0:
            text = f'forbid (principal, action, resource == Clearance::Model::"{m}") when {{ principal.nationality == "{nat}" }};'
        elif kind == 1:
            text = (f'forbid (principal, action, resource == Clearance::Model::"{m}") '
                    f'unless {{ principal.us_person || principal in Clearance::OrgGroup::"{g}" }};')
        elif kind == 2:
            text = (f'forbid (principal, action, resource in Clearance::ModelFamily::"{rng.choice(families)}") '
                    f'when {{ context.use_case == "uc-{i}" }};')
        else:
            text = f'permit (principal in Clearance::OrgGroup::"{g}", action, resource == Clearance::Model::"{m}");'
        start = T0 + timedelta(hours=rng.randint(-240, 240))
        end = start + timedelta(days=rng.randint(1, 60)) if rng.random() < 0.5 else None
        directives.append(DirectiveRecord(f"D-{i:03d}", f"Directive {i}", text, start, end))
    approvals = tuple(ApprovalRecord(f"apr_{i}", rng.choice(org_names), models[(i * 10) % n_models].name)
                      for i in range(100))
    grants = tuple(GrantRecord(f"grt_{i}", rng.choice(org_names), rng.choice(models).name,
                               T0 - timedelta(days=1), T0 + timedelta(days=29)) for i in range(50))
    return PolicyWorld(orgs=orgs, groups=groups, users=users, models=models, sources=sources,
                       directives=tuple(directives), approvals=approvals, grants=grants)


def percentiles(ns: list[int]) -> dict:
    s = sorted(ns)
    q = lambda p: s[min(len(s) - 1, int(p * len(s)))] / 1000  # noqa: E731
    return {"p50_us": round(q(0.50), 2), "p90_us": round(q(0.90), 2), "p99_us": round(q(0.99), 2),
            "mean_us": round(statistics.fmean(s) / 1000, 2), "n": len(s)}


def run(engine, calls) -> list[int]:
    out = []
    clock = time.perf_counter_ns
    for p, m, ctx in calls:
        t = clock()
        engine.decide(p, m, ctx)
        out.append(clock() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--orgs", type=int, default=500)
    ap.add_argument("--models", type=int, default=50)
    ap.add_argument("--directives", type=int, default=200)
    ap.add_argument("--samples", type=int, default=20_000)
    ap.add_argument("--active-callers", type=int, default=500, help="distinct callers in the cached replay")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    world = make_world(args.users, args.orgs, args.models, args.directives, rng)
    t = time.perf_counter()
    engine = build_engine(world)
    compile_s = time.perf_counter() - t
    uncached = build_engine(replace(world, cache_size=0))

    users = world.users
    models = [m.name for m in world.models]

    def call(pool, now):
        u = rng.choice(pool)
        guard = {"jailbreak": rng.choice([0.0, 0.01, 0.12, 0.3, 0.51, 0.97]), "cyber_offense": rng.random() * 0.6}
        uc = rng.choice(["", "", "", "uc-2", "fraud"])
        return Principal("k", u.id, u.org), rng.choice(models), PolicyContext(now, uc, guard)

    # Cold: any caller, any model, any instant in a week (directive windows open and close within it).
    cold_calls = [call(users, T0 + timedelta(seconds=rng.randint(0, 7 * 86400), milliseconds=rng.randint(0, 999)))
                  for _ in range(args.samples)]
    # Warm: a working day's traffic, time moving forward.  Each active caller holds one key (one use
    # case) and uses one to three models; 95% of prompts score low, 5% are flagged by the guard.
    active = rng.sample(users, args.active_callers)
    habits = {u.id: (rng.choice(["", "", "uc-2", "fraud"]), rng.sample(models, rng.randint(1, 3))) for u in active}
    n_warm = args.samples * 5
    warm_calls = []
    for i in range(n_warm):
        u = rng.choice(active)
        uc, favourite = habits[u.id]
        flagged = rng.random() < 0.05
        guard = {"jailbreak": rng.uniform(0.5, 1.0) if flagged else rng.uniform(0.0, 0.2),
                 "cyber_offense": rng.uniform(0.0, 0.2)}
        now = T0 + timedelta(hours=9) + timedelta(seconds=8 * 3600 * i / n_warm)
        warm_calls.append((Principal("k", u.id, u.org), rng.choice(favourite), PolicyContext(now, uc, guard)))

    run(uncached, cold_calls[:500])  # warm up the interpreter and allocator
    cold = run(uncached, cold_calls)
    warm_all = run(engine, warm_calls)
    warm = warm_all[args.samples * 4:]  # the last fifth, once the first hours filled the cache
    listing = []
    for u in rng.sample(users, 200):
        t0 = time.perf_counter_ns()
        uncached.allowed_models(Principal("k", u.id, u.org), T0)
        listing.append(time.perf_counter_ns() - t0)
    allowed = sum(uncached.decide(*c).allowed for c in cold_calls[:2000]) / 2000

    print(json.dumps({
        "benchmark": "policy_decision",
        "world": {"users": args.users, "orgs": args.orgs, "models": args.models, "directives": args.directives,
                  "approvals": len(world.approvals), "grants": len(world.grants), **engine.counts},
        "compile_seconds": round(compile_s, 3),
        "cacheable": engine.cacheable,
        "allowed_fraction": round(allowed, 3),
        "uncached": percentiles(cold),
        "cached_replay": {**percentiles(warm), "whole_day": percentiles(warm_all),
                          "active_callers": args.active_callers, "cache_entries": len(engine._cache)},
        "allowed_models_uncached": percentiles(listing),
        "targets": {"p50_us": 50, "p99_us": 200},
    }, indent=2))


if __name__ == "__main__":
    main()

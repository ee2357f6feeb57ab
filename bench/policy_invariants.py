"""Benchmark: `clearance policy check` of 10 invariants over 10,000 users, 500 orgs, 50 models, 200 directives.

The world is the one ``bench/policy_decision.py`` builds (100 approvals, 50
grants as well).  Prints one JSON object: the compile time, the check time
(what ``policy check`` adds once the snapshot is compiled), the principal
classes it evaluated and each invariant's status.

    python bench/policy_invariants.py [--users 10000] [--orgs 500] [--models 50] [--directives 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from policy_decision import T0, make_world  # noqa: E402

from clearance.policy.check import InvariantChecker  # noqa: E402
from clearance.policy.engine import build_engine  # noqa: E402
from clearance.policy.invariants import parse_invariants  # noqa: E402

INVARIANTS = [
    {"id": "prohibited-refused", "never": {"context": {"guard": {"cyber_prohibited": ">= 0.5"}}}},
    {"id": "jailbreak-refused", "never": {"context": {"guard": {"jailbreak": ">= 0.5"}}}},
    {"id": "high-risk-vetted-only", "never": {
        "context": {"guard": {"cyber_high_risk": ">= 0.5"}},
        "principal": {"not": {"any": [{"verified": True, "group": "critical-infrastructure"},
                                      {"approved": "security-testing"}]}}}},
    {"id": "high-risk-cyber-models-only", "never": {
        "resource": {"cyber_capable": False}, "context": {"guard": {"cyber_high_risk": ">= 0.5"}}}},
    {"id": "unverified-no-frontier", "never": {"resource": {"family": "frontier", "approval_required": True},
                                               "principal": {"verified": False}}},
    {"id": "gated-needs-approval", "never": {"resource": {"approval_required": True},
                                             "principal": {"not": {"approved": True}, "verified": False}}},
    {"id": "open-for-everyone", "always": {"resource": {"family": "open", "approval_required": False},
                                           "context": {"guard": {"jailbreak": "< 0.5", "cyber_high_risk": "< 0.5"},
                                                       "use_case": ""}}},
    {"id": "no-list-when-unverified", "never": {"action": "list", "resource": {"family": "vision"},
                                                "principal": {"verified": False, "group": "health"}}},
    {"id": "ci-high-risk-on-cyber-models", "never": {
        "resource": {"cyber_capable": True}, "principal": {"verified": False},
        "context": {"guard": {"cyber_high_risk": ">= 0.5", "cyber_prohibited": "< 0.5"}}}},
    {"id": "images-jailbreak-refused", "never": {"context": {"has_images": True, "guard": {"jailbreak": ">= 0.9"}}}},
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--orgs", type=int, default=500)
    ap.add_argument("--models", type=int, default=50)
    ap.add_argument("--directives", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    world = make_world(args.users, args.orgs, args.models, args.directives, random.Random(args.seed))
    invariants = parse_invariants(INVARIANTS, "bench")
    t = time.perf_counter()
    engine = build_engine(world)
    compile_s = time.perf_counter() - t
    runs = []
    report = None
    for _ in range(args.repeat):
        t, c = time.perf_counter(), time.process_time()
        report = InvariantChecker(world, engine=engine, now=T0).check(invariants)
        runs.append((time.perf_counter() - t, time.process_time() - c))
    print(json.dumps({
        "users": args.users, "orgs": args.orgs, "models": args.models, "directives": args.directives,
        "invariants": len(invariants), "compile_s": round(compile_s, 3),
        # CPU seconds of this process (one core; the machine may be shared) and wall-clock seconds.
        "check_cpu_s": {"min": round(min(c for _, c in runs), 3), "max": round(max(c for _, c in runs), 3)},
        "check_wall_s": {"min": round(min(w for w, _ in runs), 3), "max": round(max(w for w, _ in runs), 3)},
        "runs": len(runs),
        "principal_classes": report.classes,
        "results": {r.id: r.status for r in report.results},
        "counterexamples": {r.id: r.counterexample.describe() for r in report.results if r.counterexample},
    }, indent=2))


if __name__ == "__main__":
    main()

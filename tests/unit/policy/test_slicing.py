"""Per-model slicing of the policy set gives the same decisions as evaluating the whole set."""

from __future__ import annotations

import random
import sys
from datetime import timedelta
from pathlib import Path

import cedarpy

from clearance.policy.engine import PolicyContext, build_engine
from clearance.types import Principal

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
from policy_decision import T0, make_world  # noqa: E402


def test_sliced_decisions_match_whole_set():
    rng = random.Random(3)
    world = make_world(n_users=60, n_orgs=12, n_models=10, n_directives=60, rng=rng)
    engine = build_engine(world)
    whole = cedarpy.PolicySet.from_json_str(engine.policy_json)
    users, models = world.users, [m.name for m in world.models]
    disagreements, allows = 0, 0
    for _ in range(600):
        u, m = rng.choice(users), rng.choice(models)
        ctx = PolicyContext(T0 + timedelta(hours=rng.randint(-300, 300)), rng.choice(["", "uc-2", "uc-6"]),
                            {"jailbreak": rng.choice([0.0, 0.5, 0.9]), "cyber_offense": rng.choice([0.0, 0.7])})
        got = engine.decide(Principal("k", u.id, u.org), m, ctx)
        prepared = engine._prepare(Principal("k", u.id, u.org), m, ctx, "invoke")
        ref = cedarpy.is_authorized(engine._request(*prepared[1]), whole, engine._entities)
        assert not ref.diagnostics.errors
        disagreements += got.allowed != ref.allowed
        allows += got.allowed
    assert disagreements == 0
    assert 0 < allows < 600  # the sample exercises both outcomes

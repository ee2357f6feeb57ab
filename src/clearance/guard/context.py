"""Guard scores as the policy context: ``context.guard`` in every Cedar request.

``policy_scores`` turns what a guard reported into one score per category of
``CATEGORIES``, the same way for every caller (the request path, response
screening, ``whatif`` replays of recorded decisions, the engine itself):

* a category the guard did not report is 0.0;
* the cyber tiers are nested, so each tier is raised to at least the tier
  above it (``cyber_low_risk >= cyber_high_risk >= cyber_prohibited``);
* **fail closed for guards that know only ``cyber_offense``** (the shipped
  model before the tiers, a Llama Guard mapping S2/S14, a moderation endpoint
  mapping ``illicit``): ``cyber_high_risk`` is raised to ``cyber_offense``, so
  the high-risk rules still apply to what such a guard flags.  Such a guard
  cannot tell prohibited requests from high-risk dual use, so
  ``cyber_prohibited`` stays as reported (0.0): what it flags is refused to
  everyone not entitled to high-risk help, and served to those who are;
* ``cyber_offense`` is ``max(cyber_prohibited, cyber_high_risk)`` (what a
  tier-aware guard reports anyway), so policies written against it keep
  working.

A value that is not a number in 0..1 is passed through (and spreads to the
scores derived from it), so the policy engine denies with
``guard-score-invalid`` instead of deciding on a made-up number.

``cedar_context`` is the same scores as Cedar ``decimal`` values (four places,
0.0000..1.0000), in the JSON form cedarpy accepts for extension values, plus
``error`` (whether the guard failed) and ``name``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from clearance.guard.base import CATEGORIES
from clearance.types import GuardScores


def _number(value: Any) -> float:
    if isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _valid(v: float) -> bool:
    return 0.0 <= v <= 1.0  # False for NaN


def _max(*values: float) -> float:
    """The largest value, or the first invalid one (so an invalid input is never hidden)."""
    for v in values:
        if not _valid(v):
            return v
    return max(values)


def policy_scores(scores: Mapping[str, Any]) -> dict[str, float]:
    """One score for every category of ``CATEGORIES``, read fail closed (see the module docstring)."""
    s = {c: _number(scores[c]) if scores.get(c) is not None else 0.0 for c in CATEGORIES}
    high = _max(s["cyber_high_risk"], s["cyber_prohibited"], s["cyber_offense"])
    s["cyber_high_risk"] = high
    s["cyber_low_risk"] = _max(s["cyber_low_risk"], high)
    s["cyber_offense"] = _max(s["cyber_prohibited"], high)
    return s


def decimal(value: float) -> dict[str, Any]:
    v = min(1.0, max(0.0, float(value)))
    return {"__extn": {"fn": "decimal", "arg": f"{v:.4f}"}}


def cedar_context(scores: GuardScores) -> dict[str, Any]:
    """``{"jailbreak": decimal, "cyber_prohibited": decimal, ..., "error": bool, "name": str}``."""
    out: dict[str, Any] = {c: decimal(v) for c, v in policy_scores(scores.scores).items()}
    for c, v in scores.scores.items():
        if c not in out and c.isidentifier():
            out[c] = decimal(v)
    out["error"] = scores.error is not None
    out["name"] = scores.guard
    return out

"""Guard scores as the Cedar request context record ``context.guard``.

Each category becomes a Cedar ``decimal`` (four places, 0.0000..1.0000), in
the JSON form cedarpy accepts for extension values.  Categories the policies
read are always present (0.0 when a guard did not report them), and
``context.guard.error`` says whether the guard failed.
"""

from __future__ import annotations

from typing import Any

from clearance.guard.base import CATEGORIES
from clearance.types import GuardScores


def decimal(value: float) -> dict[str, Any]:
    v = min(1.0, max(0.0, float(value)))
    return {"__extn": {"fn": "decimal", "arg": f"{v:.4f}"}}


def cedar_context(scores: GuardScores) -> dict[str, Any]:
    """``{"jailbreak": decimal, "cyber_offense": decimal, ..., "error": bool, "name": str}``."""
    out: dict[str, Any] = {c: decimal(scores.scores.get(c, 0.0)) for c in CATEGORIES}
    for c, v in scores.scores.items():
        if c not in out and c.isidentifier():
            out[c] = decimal(v)
    out["error"] = scores.error is not None
    out["name"] = scores.guard
    return out

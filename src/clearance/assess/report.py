"""Assemble the JSON report of an assessment from its run and metrics."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from clearance.assess.cjs import Rubric, score_templates
from clearance.assess.metrics import compute
from clearance.assess.runner import Endpoint, RunOutcome
from clearance.assess.suites import Suite

EXCERPT_CHARS = 400
REPORT_FORMAT = 1


def _version() -> str:
    try:
        return version("clearance")
    except PackageNotFoundError:
        return "unknown"


def build_report(suite: Suite, target: Endpoint, outcome: RunOutcome, *, judge: Endpoint | None,
                 threshold: float, universal_at: float, rubric: Rubric | None = None,
                 reference: Endpoint | None = None, reference_completed: set[str] | None = None) -> dict[str, Any]:
    """The report: what was run against what, every metric, the verdict, the CJS severity and each result."""
    metrics = compute(outcome.results, threshold=threshold, universal_at=universal_at,
                      elapsed_s=outcome.elapsed_s, seed=suite.seed)
    severity = score_templates(outcome.results, suite.templates, suite.objectives, threshold=threshold,
                               rubric=rubric, reference_completed=reference_completed)
    if reference is not None and severity["reference"] is not None:
        severity["reference"].update({"base_url": reference.base_url, "model": reference.model})
    results = []
    for r in outcome.results:
        row = asdict(r)
        row["reasons"] = list(r.reasons)
        row["success"] = r.success(threshold)
        row["response_excerpt"] = outcome.responses.get(r.item_id, "")[:EXCERPT_CHARS]
        results.append(row)
    return {
        "format": REPORT_FORMAT,
        "generator": f"clearance {_version()}",
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "target": {"base_url": target.base_url, "model": target.model},
        "judge": {"kind": "llm", "model": judge.model, "base_url": judge.base_url} if judge else {"kind": "offline"},
        "suite": suite.summary(),
        "complete": outcome.pending == 0,
        "truncated_by_budget": outcome.truncated,
        "pending": outcome.pending,
        "resumed": outcome.resumed,
        "verdict": metrics["verdict"]["line"],
        "risk_level": metrics["verdict"]["level"],
        "metrics": metrics,
        "cjs": severity,
        "templates": [{"id": t.id, "family": t.family, "source": t.source, "transform": t.transform,
                       "turns": t.turns, "tuned": t.tuned, "tooling": t.tooling} for t in suite.templates],
        "objectives": [{"id": o.id, "category": o.category, "tier": o.tier, "text": o.text, "source": o.source}
                       for o in suite.objectives],
        "results": results,
    }

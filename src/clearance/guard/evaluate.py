"""Quality of a guard on the family-held-out test split.

Per category: AUROC, the true-positive rate at 1% false-positive rate, and
the TPR/FPR at the configured threshold; plus the false-positive rate on the
benign contrast set (prompts that sound alarming but are fine).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from clearance.guard.dataset import CATEGORIES, CONTRAST_FAMILY, Example, family_split


def auroc(y: np.ndarray, s: np.ndarray) -> float:
    """Area under the ROC curve (ties counted half)."""
    pos, neg = s[y == 1], s[y == 0]
    if not len(pos) or not len(neg):
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    allv = np.concatenate([pos, neg])[order]
    # average ranks for ties
    _, inv, counts = np.unique(allv, return_inverse=True, return_counts=True)
    cum = np.cumsum(counts)
    avg = cum - (counts - 1) / 2.0
    ranks[order] = avg[inv]
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def tpr_at_fpr(y: np.ndarray, s: np.ndarray, fpr: float) -> float:
    """Highest TPR whose threshold keeps the FPR at or below ``fpr``."""
    neg = np.sort(s[y == 0])[::-1]
    k = int(np.floor(fpr * len(neg)))
    thr = neg[k] if k < len(neg) else -np.inf
    return float(np.mean(s[y == 1] > thr))


def evaluate(score: Callable[[str], dict[str, float]], thresholds: dict[str, float],
             seed: int = 0, test: list[Example] | None = None) -> dict:
    """Score every test example and summarise quality per category."""
    test = test if test is not None else family_split(seed).test
    scored = [score(e.text) for e in test]
    report: dict = {"test_examples": len(test), "families": sorted({e.family for e in test}),
                    "categories": {}}
    contrast = np.array([e.family == CONTRAST_FAMILY for e in test])
    flagged_any = np.zeros(len(test), bool)
    for cat in CATEGORIES:
        y = np.array([e.label(cat) for e in test])
        s = np.array([d.get(cat, 0.0) for d in scored])
        thr = thresholds.get(cat, 0.5)
        flagged_any |= s >= thr
        report["categories"][cat] = {
            "positives": int(y.sum()), "negatives": int((y == 0).sum()),
            "auroc": round(auroc(y, s), 4), "tpr_at_1pct_fpr": round(tpr_at_fpr(y, s, 0.01), 4),
            "threshold": thr, "tpr_at_threshold": round(float(np.mean(s[y == 1] >= thr)), 4),
            "fpr_at_threshold": round(float(np.mean(s[y == 0] >= thr)), 4),
        }
    report["benign_contrast"] = {
        "examples": int(contrast.sum()),
        "false_positive_rate": round(float(flagged_any[contrast].mean()), 4) if contrast.any() else None,
        "flagged": [e.text for e, f, c in zip(test, flagged_any, contrast) if f and c],
    }
    return report

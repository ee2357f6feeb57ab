"""Quality of a guard on the family-held-out test split.

Per category: AUROC, the true-positive rate at 1% false-positive rate, the
TPR/FPR at the configured threshold and, per test family, how many of its
examples were flagged, with false positives counted on HARD benign prompts
only; the tier confusion matrix; the targets (docs/guard.md); and the
false-positive rate on the benign contrast set (prompts that sound alarming
but are fine).  With a conversation scorer,
the same for multi-message conversations built from the held-out families'
rows (``conversations.py``), and how many of each kind were flagged.

``evaluate_labelled`` does the same for an operator's own labelled traffic
(``clearance guard eval --data``) and suggests the threshold that keeps the
false-positive rate on their negatives at a target.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from clearance.guard.conversations import KINDS, Conversation, conversations
from clearance.guard.dataset import (CATEGORIES, CONTRAST_FAMILY, TEST_FAMILIES, TIERS, Example, family_split,
                                     is_defensive_family, is_hard_negative, is_persona_family, load_rows)

CONVERSATIONS = 1500  # held-out conversations scored by ``guard eval``


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
    if not (y == 1).any():
        return float("nan")
    neg = np.sort(s[y == 0])[::-1]
    k = int(np.floor(fpr * len(neg)))
    thr = neg[k] if k < len(neg) else -np.inf
    return float(np.mean(s[y == 1] > thr))


def _num(x: float) -> float | None:
    """Rounded for the report; None where the metric is undefined (no positives or negatives)."""
    return None if np.isnan(x) else round(float(x), 4)


def _rate(hits: np.ndarray) -> float | None:
    """Share of true values, or None when there is nothing to count."""
    return round(float(hits.mean()), 4) if len(hits) else None


def _by_family(test: list[Example], y: np.ndarray, flagged: np.ndarray) -> dict[str, dict[str, int]]:
    """Per family: its positives and how many were flagged, its negatives and how many were flagged."""
    out: dict[str, dict[str, int]] = {}
    for e, label, f in zip(test, y, flagged):
        r = out.setdefault(e.family, {"positives": 0, "detected": 0, "negatives": 0, "false_positives": 0})
        if label:
            r["positives"] += 1
            r["detected"] += int(f)
        else:
            r["negatives"] += 1
            r["false_positives"] += int(f)
    return dict(sorted(out.items()))


def _quality(y: np.ndarray, s: np.ndarray, thr: float) -> dict:
    return {"positives": int(y.sum()), "negatives": int((y == 0).sum()),
            "auroc": _num(auroc(y, s)), "tpr_at_1pct_fpr": _num(tpr_at_fpr(y, s, 0.01)),
            "threshold": thr, "tpr_at_threshold": _rate(s[y == 1] >= thr), "fpr_at_threshold": _rate(s[y == 0] >= thr)}


def evaluate_conversations(score: Callable[[list[str]], dict[str, float]], thresholds: dict[str, float],
                           convs: list[Conversation]) -> dict:
    """Score each conversation's texts together, as the gateway does, and summarise per category and kind."""
    scored = [score(list(c.texts)) for c in convs]
    flagged = np.zeros(len(convs), bool)
    report: dict = {"conversations": len(convs), "categories": {}}
    for cat in CATEGORIES:
        y = np.array([c.label(cat) for c in convs])
        s = np.array([d.get(cat, 0.0) for d in scored])
        thr = thresholds.get(cat, 0.5)
        if cat in FLAGGING:
            flagged |= s >= thr
        report["categories"][cat] = _quality(y, s, thr)
    kinds = np.array([c.kind for c in convs])
    report["flagged_by_kind"] = {k: {"conversations": int((kinds == k).sum()), "flagged": int(flagged[kinds == k].sum())}
                                 for k in KINDS}
    return report


# Categories whose flag stops a request under the default policies (low-risk dual use passes).
FLAGGING = ("jailbreak", "cyber_prohibited", "cyber_high_risk", "cyber_offense")


def predicted_tier(s: dict[str, float], thresholds: dict[str, float]) -> int:
    """The tier a guard's scores place a request in: the highest tier whose score reaches its threshold."""
    for tier, cat in ((3, "cyber_prohibited"), (2, "cyber_high_risk"), (1, "cyber_low_risk")):
        if s.get(cat, 0.0) >= thresholds.get(cat, 0.5):
            return tier
    return 0


def tier_confusion(test: list[Example], scored: list[dict[str, float]], thresholds: dict[str, float]) -> dict:
    """Rows: the true tier; columns: the predicted tier, at the thresholds (``TIERS`` order)."""
    m = np.zeros((4, 4), np.int64)
    for e, s in zip(test, scored):
        m[e.tier, predicted_tier(s, thresholds)] += 1
    return {"tiers": list(TIERS), "matrix": m.tolist()}


def _share(test: list[Example], hits: np.ndarray, families) -> dict:
    sel = np.array([families(e.family) for e in test])
    return {"examples": int(sel.sum()), "flagged": int(hits[sel].sum()), "rate": _rate(hits[sel])}


def targets(test: list[Example], scored: list[dict[str, float]], thresholds: dict[str, float],
            quality: dict[str, dict]) -> dict:
    """The figures the guard is held to (docs/guard.md, "Targets"), on the held-out split."""
    def at(cat: str) -> np.ndarray:
        return np.array([s.get(cat, 0.0) >= thresholds.get(cat, 0.5) for s in scored])
    prohibited = np.array([e.tier == 3 for e in test])
    offensive = at("cyber_prohibited") | at("cyber_high_risk")
    return {
        "jailbreak_tpr_at_1pct_fpr": quality["jailbreak"]["tpr_at_1pct_fpr"],
        "offensive_tpr_at_1pct_fpr": quality["cyber_high_risk"]["tpr_at_1pct_fpr"],
        "prohibited_recognised": {"examples": int(prohibited.sum()),
                                  "rate": _rate(at("cyber_prohibited")[prohibited])},
        "benign_security_flagged_offensive": _share(test, offensive, is_defensive_family),
        "personas_flagged_jailbreak": _share(test, at("jailbreak"), is_persona_family),
    }


def evaluate(score: Callable[[str], dict[str, float]], thresholds: dict[str, float],
             seed: int = 0, test: list[Example] | None = None,
             score_conversation: Callable[[list[str]], dict[str, float]] | None = None) -> dict:
    """Score every test example and summarise quality per category (and conversations, given a scorer).

    False-positive rates and AUROC are measured against the HARD benign test
    prompts only (``is_hard_negative``: personas, role-play, system prompts,
    defensive security work, alarming-but-fine requests, documents without an
    injection); the easy benign text (documentation, plain tasks) is reported
    apart (``all_negatives``), since it flatters every figure.
    """
    test = test if test is not None else family_split(seed).test
    scored = [score(e.text) for e in test]
    hard = np.array([is_hard_negative(e.family) for e in test])
    report: dict = {"test_examples": len(test), "families": sorted({e.family for e in test}),
                    "hard_negatives": int(hard.sum()), "categories": {}}
    contrast = np.array([e.family == CONTRAST_FAMILY for e in test])
    flagged_any = np.zeros(len(test), bool)
    for cat in CATEGORIES:
        y = np.array([e.label(cat) for e in test])
        s = np.array([d.get(cat, 0.0) for d in scored])
        thr = thresholds.get(cat, 0.5)
        if cat in FLAGGING:
            flagged_any |= s >= thr
        keep = (y == 1) | hard
        every = _quality(y, s, thr)
        report["categories"][cat] = {
            **_quality(y[keep], s[keep], thr),
            "all_negatives": {k: every[k] for k in ("negatives", "auroc", "tpr_at_1pct_fpr", "fpr_at_threshold")},
            "by_family": _by_family(test, y, s >= thr)}
    report["targets"] = targets(test, scored, thresholds, report["categories"])
    report["tier_confusion"] = tier_confusion(test, scored, thresholds)
    report["benign_contrast"] = {
        "examples": int(contrast.sum()),
        "false_positive_rate": round(float(flagged_any[contrast].mean()), 4) if contrast.any() else None,
        "flagged": [e.text for e, f, c in zip(test, flagged_any, contrast) if f and c],
    }
    if score_conversation is not None:
        held_out = [r for r in load_rows() if r.family in TEST_FAMILIES]
        report["conversations"] = evaluate_conversations(
            score_conversation, thresholds, conversations(held_out, seed + 1, CONVERSATIONS))
    return report


# -- an operator's own labelled data -------------------------------------------

EXCERPT = 100  # characters of a text shown among a report's errors


def threshold_for_fpr(neg: np.ndarray, fpr: float) -> float | None:
    """The lowest threshold, rounded up to four decimals, that flags at most ``fpr`` of ``neg``
    (a score flags when it is at or above the threshold); None without negatives."""
    if not len(neg):
        return None
    desc = np.sort(neg)[::-1]
    k = int(np.floor(fpr * len(desc)))
    if k >= len(desc):
        return 0.0
    # Just above the (k+1)-th highest negative, so at most k negatives reach it.
    return float(np.ceil(np.nextafter(desc[k], np.inf) * 10_000) / 10_000)


def evaluate_labelled(scored: list[tuple[int, str, dict[str, float], dict[str, int]]],
                      thresholds: dict[str, float], target_fpr: float = 0.01, show: int = 5) -> dict:
    """Quality on labelled examples: ``(line number, text, scores, labels)``, labels 0/1 per category.

    Per category, over the examples labelled for it: AUROC, the TPR at
    ``target_fpr`` and the threshold that keeps the FPR there, the TPR/FPR at
    the configured threshold, and the ``show`` highest-scoring negatives and
    lowest-scoring positives on the wrong side of it (line, score, excerpt).
    No threshold is suggested from fewer than ``1 / target_fpr`` negatives.
    """
    report: dict = {"examples": len(scored), "target_fpr": target_fpr, "categories": {}}
    # Below 1/target negatives the target rate cannot be told apart from zero: suggest nothing.
    min_negatives = math.ceil(1 / target_fpr - 1e-9)
    for cat in CATEGORIES:
        rows = [(line, text, s.get(cat, 0.0), labels[cat]) for line, text, s, labels in scored if cat in labels]
        y = np.array([r[3] for r in rows], dtype=np.int64)
        s = np.array([r[2] for r in rows], dtype=np.float64)
        thr = thresholds.get(cat, 0.5)
        negatives = int((y == 0).sum())
        suggested = threshold_for_fpr(s[y == 0], target_fpr) if negatives >= min_negatives else None
        out = _quality(y, s, thr)
        out.pop("tpr_at_1pct_fpr")
        out["tpr_at_target_fpr"] = _num(tpr_at_fpr(y, s, target_fpr))
        out["threshold_for_target_fpr"] = suggested
        if suggested is not None:
            out["tpr_at_suggested"] = _rate(s[y == 1] >= suggested)
            out["fpr_at_suggested"] = _rate(s[y == 0] >= suggested)
        else:
            out["note"] = (f"{negatives} negatives: at least {min_negatives} "
                           f"are needed to place a threshold at {target_fpr:g} false-positive rate")
        fps = sorted((r for r in rows if not r[3] and r[2] >= thr), key=lambda r: -r[2])[:show]
        misses = sorted((r for r in rows if r[3] and r[2] < thr), key=lambda r: r[2])[:show]
        out["false_positives"] = [{"line": r[0], "score": round(r[2], 4), "text": r[1][:EXCERPT]} for r in fps]
        out["missed"] = [{"line": r[0], "score": round(r[2], 4), "text": r[1][:EXCERPT]} for r in misses]
        report["categories"][cat] = out
    return report

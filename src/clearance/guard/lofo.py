"""Leave-one-family-out: how the first stage does on each family when it has never seen it.

A maintenance measurement, not part of the request path (about a minute of
CPU per family; ``guard eval --lofo`` runs it and ``docs/guard-lofo.json``
records the last run).  For every family of the recorded data (composites
excepted, since they are drawn from the other families):

1. the family's rows are removed, with every row of the other families that
   nearly copies one of them (``dataset.drop_near_duplicates``), and with the
   REFERENCE negatives: the hard benign families of the test split, which
   are never trained on in any fold;
2. the recipe (rows plus composites drawn from them, the shipped L2 and
   weights) is fitted for the heads the family bears on (``heads_for``);
3. each head's threshold is placed where 1% of the reference negatives reach
   it (for a benign reference family, of the other reference families);
4. a family of attacks reports the share of its rows at or above the
   threshold (detection); a benign family reports its share above it (false
   positives).

The reference is fixed, so every family is measured against the same hard
negatives, and the threshold is never placed on the family being measured.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from clearance.guard.dataset import (JAILBREAK_ONLY_FAMILIES, TEST_FAMILIES, Example, drop_near_duplicates,
                                     is_hard_negative, load_rows, training_set)
from clearance.guard.model import LinearModel
from clearance.guard.normalise import expanded
from clearance.guard.train import (BITS, _subset, featurise, fit_logistic, head_rows, sample_weights,
                                   training_windows)

MIN_ROWS = 5  # families smaller than this are too small to report a rate on


def heads_for(rows: list[Example]) -> list[str]:
    """The heads a family bears on: ``jailbreak`` for jailbreaks; the head of its own tier and, for
    a prohibited family, ``cyber_high_risk`` (what the default policies refuse); and for a benign
    family the two heads that refuse a request for most people (``jailbreak``, ``cyber_high_risk``)."""
    out = []
    if any(r.jailbreak for r in rows):
        out.append("jailbreak")
    top = max(r.tier for r in rows)
    if top == 1:
        out.append("cyber_low_risk")
    if top >= 2:
        out.append("cyber_high_risk")
    if top == 3:
        out.append("cyber_prohibited")
    return out or ["jailbreak", "cyber_high_risk"]


def _logits(w: np.ndarray, b: float, texts: list[str]) -> np.ndarray:
    """The first stage's logit of each text for one head, scored as the gateway scores it."""
    model = LinearModel(("h",), w[None, :], np.array([b]), BITS, {})
    return np.array([float(model.logits(expanded(t))[0]) for t in texts])


def one_family(family: str, rows: list[Example], reference: list[Example], seed: int) -> dict:
    held = [r for r in rows if r.family == family]
    ref = [r for r in reference if r.family != family]
    pool = [r for r in rows if r.family != family and r.family not in {x.family for x in reference}]
    pool, dropped = drop_near_duplicates(pool, held + ref)
    train = training_set(pool, seed)
    texts, owners = training_windows(train)
    x = featurise(texts)
    fams = np.array([o.family for o in owners])
    out: dict = {"rows": len(held), "dropped_near_duplicates": dropped, "heads": {}}
    jailbreak_only = np.array([f in JAILBREAK_ONLY_FAMILIES for f in fams])
    for head in heads_for(held):
        rows = head_rows(head, jailbreak_only)
        xh = x if len(rows) == x.rows else _subset(x, rows)
        y = np.array([owners[i].label(head) for i in rows], np.float64)
        w, b = fit_logistic(xh, y, 1 << BITS, sample_weights(y, fams[rows]))
        ref_z = _logits(w, b, [r.text for r in ref])
        thr = float(np.sort(ref_z)[::-1][int(0.01 * len(ref_z))])
        z = _logits(w, b, [r.text for r in held])
        labels = np.array([r.label(head) for r in held])
        rec: dict = {"threshold_logit": round(thr, 4)}
        if labels.any():
            rec["detected"] = round(float(np.mean(z[labels == 1] > thr)), 4)
        if (labels == 0).any():
            rec["false_positives"] = round(float(np.mean(z[labels == 0] > thr)), 4)
        out["heads"][head] = rec
    return out


def _order(family: str) -> tuple[int, str]:
    """Attack families first (jailbreaks, then cyber), then hard negatives, then easy benign text, so
    that a run stopped early has measured what matters most."""
    if family.startswith(("jb-", "inj-")):
        return 0, family
    if family.startswith(("cyber-", "harm-")):
        return 1, family
    return (2 if is_hard_negative(family) else 3), family


def run(families: list[str] | None = None, seed: int = 0, log=print, out=None) -> dict:
    rows = load_rows()
    reference = [r for r in rows if r.family in TEST_FAMILIES and is_hard_negative(r.family)]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.family] = counts.get(r.family, 0) + 1
    todo = families or sorted((f for f, n in counts.items() if n >= MIN_ROWS and f != "fragment-suffix"), key=_order)
    report: dict = {"seed": seed, "reference_negatives": len(reference),
                    "reference_families": sorted({r.family for r in reference}), "families": {}}
    for fam in todo:
        t0 = time.process_time()
        report["families"][fam] = one_family(fam, rows, reference, seed)
        log(f"{fam}: {json.dumps(report['families'][fam]['heads'])} ({time.process_time() - t0:.0f} s CPU)")
        if out is not None:  # the report so far, rewritten after every family
            with open(out, "w") as fh:
                fh.write(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", action="append", help="only these families (default: every family)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the JSON report here")
    args = ap.parse_args(argv)
    report = run(args.family, args.seed, log=lambda m: print(m, file=sys.stderr, flush=True), out=args.out)
    if not args.out:
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

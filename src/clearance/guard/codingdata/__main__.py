"""Build ``data/handwritten/benign-coding*.txt`` from the pieces in ``pieces.py`` (seeded, deterministic)."""

from __future__ import annotations

import random
import sys
from pathlib import Path

from clearance.guard.codingdata import pieces

HANDWRITTEN = Path(__file__).resolve().parents[1] / "data" / "handwritten"
# The rows of the measured variants (family benign-hw-coding; bench/guard_coding_variants.py). Not in
# MANIFEST.json: the model was not retrained on them (docs/guard.md, "Everyday coding requests").
OUT = HANDWRITTEN / "benign-coding.txt"
# Measured and not trained on (docs/guard.md, "Everyday coding requests"): the held-out families.
OUT_HELDOUT = HANDWRITTEN / "benign-coding-heldout.txt"
SEED = 20261207


def _rows(rng: random.Random, tasks: tuple[str, ...], per_task: int) -> list[str]:
    out = []
    for task in tasks:
        for phrasing in rng.sample(pieces.PHRASINGS, per_task):
            row = phrasing.format(task=task)
            out.append(row[0].upper() + row[1:])
    return out


def build(seed: int = SEED) -> tuple[list[str], list[str]]:
    """The trained rows (every task of ``pieces.TRAIN`` in two phrasings) and the held-out rows
    (every task of ``pieces.HELDOUT`` in two phrasings), from one generator."""
    rng = random.Random(seed)
    train = [r for fam in pieces.TRAIN.values() for r in _rows(rng, fam, 2)]
    heldout = [r for fam in pieces.HELDOUT.values() for r in _rows(rng, fam, 2)]
    return train, heldout


def main() -> int:
    train, heldout = build()
    for path, rows in ((OUT, train), (OUT_HELDOUT, heldout)):
        path.write_text("".join(r + "\n" for r in rows), encoding="utf-8")
        print(f"wrote {len(rows)} rows to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

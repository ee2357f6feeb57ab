"""Train the guard with the everyday coding requests (``guard/codingdata``) added, in the variants measured in
docs/guard.md ("Everyday coding requests"), without changing the repository's data: the rows of
``data/handwritten/benign-coding.txt`` are added in-process as family ``benign-hw-coding`` (appended after
every other row by ``dataset.training_set``, fitted by every head, not placing the 0.5 point).

    python bench/guard_coding_variants.py all /tmp/model-A
    python bench/guard_coding_variants.py no-security /tmp/model-B     # without the security-adjacent tasks
    python bench/guard_coding_variants.py one-phrasing /tmp/model-C    # one phrasing per task (150 rows)
    python bench/guard_coding_variants.py all /tmp/model-W --weight 0.2  # the coding rows weighted x0.2
    clearance guard eval --model-dir /tmp/model-A
"""

from __future__ import annotations

import argparse
from pathlib import Path

from clearance.guard import dataset, train
from clearance.guard.codingdata import pieces
from clearance.guard.codingdata.__main__ import OUT

FAMILY = "benign-hw-coding"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("variant", choices=("all", "no-security", "one-phrasing"))
    ap.add_argument("out", type=Path)
    ap.add_argument("--weight", type=float, default=1.0, help="factor on the coding rows' sample weights")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    security = set(pieces.TRAIN["security-adjacent"])
    tasks = [t for fam in pieces.TRAIN.values() for t in fam]
    rows, seen = [], set()
    for line in OUT.read_text(encoding="utf-8").splitlines():
        task = next(t for t in tasks if t in line)
        if args.variant == "no-security" and task in security:
            continue
        if args.variant == "one-phrasing" and task in seen:
            continue
        seen.add(task)
        rows.append(dataset.Example(line.strip(), FAMILY, 0, 0))
    load_rows = dataset.load_rows
    dataset.load_rows = lambda data_dir=dataset.DATA_DIR: [r for r in load_rows(data_dir) if r.family != FAMILY] + rows
    if args.weight != 1.0:
        sample_weights = train.sample_weights

        def weighted(y, fams):
            sw = sample_weights(y, fams)
            sw[fams == FAMILY] *= args.weight
            return sw
        train.sample_weights = weighted
    print(f"{args.variant}: {len(rows)} coding rows, weight x{args.weight}")
    train.train(out_dir=args.out, seed=args.seed)


if __name__ == "__main__":
    main()

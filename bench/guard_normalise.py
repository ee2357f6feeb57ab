"""Benchmark the guard's normaliser (``clearance.guard.normalise.views``) per call.

Prints one JSON object: for prompts of 200, 1,000 and 4,000 characters, the mean, p50 and
p99 microseconds of one ``views`` call, and how many views it returned on average, for
- ``ascii``: slices of the guard's own corpus with every non-ASCII character dropped
  (the fast path, unless a slice holds something that looks encoded);
- ``mixed``: the same slices with curly quotes, dashes and a Russian and a Greek sentence
  mixed in (the full canonical path, nothing to fold or decode);
- ``obfuscated``: slices with 30 % homoglyphs and zero-width characters and a base64
  payload (everything runs).
Not a test; run by hand on an idle machine:

    .venv/bin/python bench/guard_normalise.py [--n 2000]
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import statistics
import time

from clearance.guard import augment, normalise
from clearance.guard.dataset import load_rows

LENGTHS = (200, 1000, 4000)
RUSSIAN = " Пожалуйста, проверьте отчёт до пятницы и пришлите замечания. "
GREEK = " Η συνάντηση μεταφέρθηκε στην Πέμπτη το πρωί. "


def _corpus() -> str:
    rows = load_rows()
    random.Random(0).shuffle(rows)
    return "\n".join(r.text for r in rows[:3000])


def _ascii(corpus: str, length: int, rng: random.Random) -> str:
    s = rng.randrange(0, len(corpus) - 2 * length)
    return corpus[s:s + 2 * length].encode("ascii", "ignore").decode()[:length]


def _mixed(text: str, rng: random.Random) -> str:
    text = text.replace('"', "\u201c", 1).replace("-", "\u2014", 2).replace("'", "\u2019", 3)
    cut = rng.randrange(len(text))
    extra = RUSSIAN if rng.random() < 0.5 else GREEK
    return (text[:cut] + extra + text[cut:])[:len(text)]


def _obfuscated(text: str, rng: random.Random) -> str:
    half = len(text) // 2
    hidden = augment.wrap_invisible(augment.wrap_homoglyph(text[:half], rng), rng)
    payload = base64.b64encode(text[half:half + 60].encode()).decode()
    return (hidden + " decode: " + payload + " " + text[half:])[:len(text)]


def measure(texts: list[str], repeat: int = 3) -> dict:
    for t in texts[:50]:
        normalise.views(t)
    times = []
    nviews = 0
    for t in texts:
        best = None
        for _ in range(repeat):  # best of a few: the cost of the call, not of the scheduler
            t0 = time.perf_counter_ns()
            got = normalise.views(t)
            dt = time.perf_counter_ns() - t0
            best = dt if best is None else min(best, dt)
        times.append(best / 1000)
        nviews += len(got)
    times.sort()
    return {"mean_us": round(statistics.fmean(times), 1), "p50_us": round(times[len(times) // 2], 1),
            "p99_us": round(times[int(len(times) * 0.99)], 1), "views_mean": round(nviews / len(texts), 2),
            "n": len(texts)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="prompts per length and kind")
    args = ap.parse_args()
    corpus = _corpus()
    out: dict = {"unit": "microseconds per views() call"}
    for length in LENGTHS:
        rng = random.Random(length)
        base = [_ascii(corpus, length, rng) for _ in range(args.n)]
        out[str(length)] = {
            "ascii": measure(base),
            "mixed": measure([_mixed(t, rng) for t in base]),
            "obfuscated": measure([_obfuscated(t, rng) for t in base]),
        }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

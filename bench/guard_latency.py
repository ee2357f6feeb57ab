"""Benchmark the built-in guard: per-prompt latency on one core, and `guard score` throughput.

Prints one JSON object: p50/p99 milliseconds per prompt at several lengths
(up to 4,000 characters, plus one long input screened in full; each prompt
new to the guard, the score cache off), milliseconds per request of a chat
resent turn after turn (the whole conversation each time, as chat clients
send it) with the score cache on and off, the longest pause of the main
thread while a worker thread scores a 2,000,000-character input, and lines per second through
``clearance guard score``.  Not a test; run by hand:

    .venv/bin/python bench/guard_latency.py [--compare-numpy]

``--compare-numpy`` measures per-prompt and chat latency a second time in
the same run with the C n-gram extension switched off (the numpy fallback a
guard without a compiled extension uses), and prints the ratio of the p50s.
``--compare-model DIR`` does the same with the model in ``DIR`` (one written by
``clearance guard train --out``, e.g. the previous revision's weights) in place
of the shipped one, on the same prompts: a before/after comparison from one run.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from clearance.guard import features, load_guard  # noqa: E402
from clearance.guard.dataset import load_rows  # noqa: E402
from clearance.guard.settings import GuardSettings  # noqa: E402

LENGTHS = (100, 500, 1000, 2000, 4000, 20000)
# Extra guard settings for ``--compare-model``: the built-in guard reading another model directory.
_EXTRA: dict = {}


def _settings(**kw) -> GuardSettings:
    return GuardSettings(**kw, **_EXTRA)
TURNS = (1, 2, 5, 10, 20)


@functools.cache
def _corpus() -> str:
    rows = load_rows()
    rng = random.Random(0)
    rng.shuffle(rows)
    return "\n".join(r.text for r in rows[:3000])


def _prompts(corpus: str, length: int, n: int) -> list[str]:
    rng = random.Random(length)
    return [corpus[s:s + length] for s in (rng.randrange(0, len(corpus) - length) for _ in range(n))]


def latency(n: int = 400) -> dict:
    guard = load_guard(_settings(score_cache_entries=0))  # what a prompt new to the guard costs
    corpus = _corpus()
    out = {}
    for length in LENGTHS:
        prompts = _prompts(corpus, length, n if length <= 4000 else n // 10)
        for p in prompts[:20]:
            guard.score([p])
        times = []
        for p in prompts:
            t0 = time.perf_counter()
            guard.score([p])
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        out[str(length)] = {"n": len(times), "p50_ms": round(times[len(times) // 2], 3),
                            "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 3)}
    return out


def conversation(conversations: int = 20, turns: int = max(TURNS)) -> dict:
    """Per request of a growing chat: one system prompt shared by every conversation (an
    application's), then a user turn (~150 chars) and an answer (~400 chars) per turn; each
    request carries the whole conversation so far and is scored once, as the gateway would."""
    corpus = _corpus()
    rng = random.Random(2)
    piece = lambda n: corpus[(s := rng.randrange(0, len(corpus) - n)):s + n]  # noqa: E731
    system = piece(600) + "\n\n" + piece(600)
    out: dict[str, dict] = {}
    for label, entries in (("cache_off", 0), ("cache_on", None)):
        settings = _settings() if entries is None else _settings(score_cache_entries=entries)
        guard = load_guard(settings)
        times: dict[int, list[float]] = {t: [] for t in TURNS}
        chars: dict[int, int] = {}
        for _ in range(conversations):
            msgs = [system]
            for turn in range(1, turns + 1):
                msgs.append(piece(150))
                t0 = time.perf_counter()
                guard.score(list(msgs))
                if turn in times:
                    times[turn].append((time.perf_counter() - t0) * 1000)
                    chars[turn] = sum(map(len, msgs))
                msgs.append(piece(400))
        out[label] = {str(t): {"chars": chars[t], "p50_ms": round(sorted(v)[len(v) // 2], 3)}
                      for t, v in times.items()}
    return out


def throughput(lines: int = 5000) -> dict:
    corpus = _corpus()
    rng = random.Random(1)
    data = b"".join(
        json.dumps({"text": corpus[s:s + rng.randint(50, 400)]}).encode() + b"\n"
        for s in (rng.randrange(0, len(corpus) - 500) for _ in range(lines)))
    exe = str(Path(sys.executable).parent / "clearance")
    cmd = ["taskset", "-c", "0", exe, "guard", "score"] if _has_taskset() else [exe, "guard", "score"]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, input=data, capture_output=True, check=True)
    wall = time.perf_counter() - t0
    n_out = len(r.stdout.splitlines())
    return {"lines": n_out, "seconds_including_startup": round(wall, 3),
            "lines_per_second": round(n_out / wall, 1), "mean_chars": round(len(data) / lines)}


def _has_taskset() -> bool:
    from shutil import which
    return which("taskset") is not None


def stall(chars: int = 2_000_000, trials: int = 3) -> dict:
    """The longest pause of the main thread while another thread scores one very long text.

    The gateway scores inputs over 20,000 characters in a worker thread; this is how
    long the event loop's thread can be kept from running meanwhile (by the GIL)."""
    import threading
    guard = load_guard(GuardSettings(score_cache_entries=0))
    text = _corpus()
    text = (text * (chars // len(text) + 1))[:chars]
    guard.score([text])
    out = []
    for _ in range(trials):
        done = threading.Event()
        worker = threading.Thread(target=lambda: (guard.score([text]), done.set()))
        gaps, t0 = [], time.perf_counter()
        worker.start()
        last = t0
        while not done.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
        worker.join()
        out.append({"score_ms": round((time.perf_counter() - t0) * 1000, 1),
                    "longest_main_thread_pause_ms": round(max(gaps) * 1000, 1)})
    return {"chars": chars, "trials": out}


def _ratios(slow: dict, fast: dict) -> dict:
    """p50 of ``slow`` over p50 of ``fast``, per entry of two results of the same shape."""
    return {k: _ratios(v, fast[k]) if "p50_ms" not in v else round(v["p50_ms"] / max(fast[k]["p50_ms"], 1e-9), 2)
            for k, v in slow.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compare-numpy", action="store_true",
                    help="also measure with the C n-gram extension off, in the same run")
    ap.add_argument("--compare-model", metavar="DIR", default=None,
                    help="also measure with the model in DIR instead of the shipped one, in the same run")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    out = {"c_extension": features.ACCELERATED, "per_prompt_ms": latency(),
           "conversation_per_request_ms": conversation(), "long_input_in_a_thread": stall()}
    if args.compare_numpy and features.ACCELERATED:
        ext, features._ngrams = features._ngrams, None
        try:
            fallback = {"per_prompt_ms": latency(), "conversation_per_request_ms": conversation(),
                        "long_input_in_a_thread": stall()}
        finally:
            features._ngrams = ext
        out["numpy_fallback"] = fallback
        out["numpy_over_c_p50"] = {k: _ratios(fallback[k], out[k]) for k in fallback
                                   if k != "long_input_in_a_thread"}
    if args.compare_model:
        from clearance.guard.settings import BuiltinGuardSettings
        _EXTRA.update(default="compare", guards={"compare": BuiltinGuardSettings(model_dir=args.compare_model)})
        try:
            other = {"per_prompt_ms": latency(), "conversation_per_request_ms": conversation()}
        finally:
            _EXTRA.clear()
        out["compare_model"] = {"model_dir": args.compare_model, **other}
        out["shipped_over_compare_model_p50"] = {k: _ratios(out[k], other[k]) for k in other}
    out["guard_score_cli"] = throughput()
    out["one_core"] = hasattr(os, "sched_setaffinity")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

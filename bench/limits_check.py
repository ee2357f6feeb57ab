"""What one usage-limit check costs the gateway's process, in isolation: CPU microseconds per check.

Calls ``Limiter.check`` (what the request path calls before the upstream call)
with the benchmark's limits (a request limit and a token budget, as the
``clearance-limits`` system has) against Redis, one check after another and
with several at once, and reads the process's CPU time (user + system)
around the calls: the counter store's own CPU is not counted, the client's
packing, sending, waiting and parsing is.  Each run is a separate process
pinned to one core; ``--src LABEL=DIR`` (repeatable) runs it from another
source tree (``DIR/src`` first on ``PYTHONPATH``), and the trees take turns
round after round, so two versions are compared in the same minutes.  Prints
JSON: every run, and per tree and concurrency the median CPU and wall time per
check and the ratio to the first tree.  With ``--callgrind`` each run is made
under callgrind, counts zeroed before and dumped after each measured batch:
instructions per check, which other work on the machine does not move (the
ratio is then of instructions).

Run: ``python bench/limits_check.py [--redis redis://127.0.0.1:6379/0] [--checks 5000]
[--concurrency 1,8] [--rounds 3] [--src base=/path/to/other/checkout --src new=.] [--memory] [--callgrind]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _callgrind(command: str) -> None:
    """Send a command to the callgrind instance this process runs under (zero or dump the counts)."""
    subprocess.run(["callgrind_control", command, str(os.getpid())], check=True, stdout=subprocess.DEVNULL)


async def _measure(redis_url: str | None, checks: int, concurrency: list[int], callgrind: bool) -> dict[str, object]:
    from clearance.limits.enforce import Limiter
    from clearance.limits.rules import Rule
    from clearance.limits.settings import LimitsSettings

    settings = LimitsSettings(redis_url=redis_url, key_prefix=f"clearance-bench-check:{os.getpid()}:")
    limiter = Limiter(settings)
    rules = (Rule("lim_bench", "org", "bench", "bench-model", requests_per_minute=10**9, tokens_per_day=10**12),)
    for _ in range(500):
        await limiter.check(rules)
    out: dict[str, object] = {}
    for c in concurrency:
        n = checks // c * c

        async def caller(k: int) -> None:
            for _ in range(k):
                await limiter.check(rules)

        if callgrind:
            _callgrind("--zero")
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(caller(n // c) for _ in range(c)))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        if callgrind:
            _callgrind(f"--dump=concurrency-{c}-checks-{n}")
        out[str(c)] = {"cpu_us_per_check": round(cpu * 1e6 / n, 1), "wall_us_per_check": round(wall * 1e6 / n, 1)}
    await limiter.aclose()
    return out


def _child(args: argparse.Namespace) -> int:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.core})
    import uvloop

    conc = [int(c) for c in args.concurrency.split(",")]
    got = uvloop.run(_measure(None if args.memory else args.redis, args.checks, conc, args.callgrind))
    print(json.dumps(got))
    return 0


def _dumps(folder: Path) -> dict[str, int]:
    """Instructions per check from the measured dumps (``Trigger: dump concurrency-C-checks-N``), by C."""
    got = {}
    for f in folder.iterdir():
        text = f.read_text(errors="replace")
        trigger = re.search(r"^desc: Trigger: .*concurrency-(\d+)-checks-(\d+)", text, re.M)
        total = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
        if trigger and total:
            got[trigger.group(1)] = round(int(total.group(1)) / int(trigger.group(2)))
    return got


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--redis", default=os.environ.get("CLEARANCE_BENCH_REDIS", "redis://127.0.0.1:6379/0"))
    ap.add_argument("--memory", action="store_true", help="count in the process instead of on Redis")
    ap.add_argument("--checks", type=int, default=5000)
    ap.add_argument("--concurrency", default="1,8", help="checks in flight at once, comma-separated")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--core", type=int, default=1, help="the core each run is pinned to")
    ap.add_argument("--src", action="append", default=[], help="LABEL=DIR: run Clearance from DIR/src")
    ap.add_argument("--callgrind", action="store_true",
                    help="run each tree under valgrind --tool=callgrind and report instructions per check "
                         "(unaffected by other work on the machine; its CPU and wall times are not used)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return _child(args)

    trees = [tuple(s.split("=", 1)) for s in args.src] or [("current", "")]
    runs = []
    base_path = os.environ.get("PYTHONPATH", "")
    child = [sys.executable, __file__, "--child", "--redis", args.redis, "--checks", str(args.checks),
             "--concurrency", args.concurrency, "--core", str(args.core)] + (["--memory"] if args.memory else [])
    for rnd in range(args.rounds):
        for label, tree in trees:
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(
                p for p in (str(Path(tree).resolve() / "src") if tree else "", base_path) if p))
            if args.callgrind:
                with tempfile.TemporaryDirectory() as tmp:
                    out = subprocess.run(["valgrind", "--tool=callgrind", "--dump-instr=no",
                                          f"--callgrind-out-file={tmp}/cg.out", *child, "--callgrind"], env=env,
                                         check=True, capture_output=True, text=True).stdout
                    got = json.loads(out)
                    for c, n in _dumps(Path(tmp)).items():
                        got[c]["instructions_per_check"] = n
            else:
                got = json.loads(subprocess.run(child, env=env, check=True, capture_output=True, text=True).stdout)
            row = {"label": label, "round": rnd, "load_avg": round(os.getloadavg()[0], 2), **got}
            print(json.dumps(row), file=sys.stderr, flush=True)
            runs.append(row)
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for label, _ in trees:
        summary[label] = {}
        for c in args.concurrency.split(","):
            rows = [r[c] for r in runs if r["label"] == label]
            keys = ("cpu_us_per_check", "wall_us_per_check") + (("instructions_per_check",) if args.callgrind else ())
            summary[label][c] = {k: statistics.median(r[k] for r in rows) for k in keys}
    first = trees[0][0]
    for label in summary:
        for c, med in summary[label].items():
            key = "instructions_per_check" if args.callgrind else "cpu_us_per_check"
            med["ratio_to_" + first] = round(med[key] / summary[first][c][key], 3)
    print(json.dumps({"store": "memory" if args.memory else "redis", "checks": args.checks, "runs": runs,
                      "median": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

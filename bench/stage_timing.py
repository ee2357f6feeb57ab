"""Where a request's time goes inside the gateway, stage by stage, at a fixed rate.

Starts the upstream stub (core 0) and Clearance with every stage on (core 1)
exactly as ``gateway_overhead.py`` does, with ``bench/stage_site`` first on
the gateway's ``PYTHONPATH``: its ``sitecustomize`` wraps the functions that
bound each stage and records their durations (see that module).  Drives
non-streaming requests open-loop at ``--rate``, then prints JSON: the client's
latency percentiles, the stub's own (``direct``) for reference, and p50 / p90 /
p99 per stage in microseconds.  What the stages do not cover (the HTTP server,
parsing the body, rendering the answer, waking up) is the remainder.

The wrappers cost about a microsecond per call; compare stages with each
other, not with an uninstrumented run.

Run: ``python bench/stage_timing.py [--rate 500] [--duration 10] [--warmup 3]``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen  # noqa: E402
import systems  # noqa: E402

SITE = Path(__file__).resolve().parent / "stage_site"


def percentiles(ns: list[int]) -> dict[str, float]:
    xs = sorted(ns)
    if not xs:
        return {"calls": 0}
    at = lambda q: round(xs[min(len(xs) - 1, int(q * len(xs)))] / 1000, 1)  # noqa: E731
    return {"calls": len(xs), "p50_us": at(0.5), "p90_us": at(0.9), "p99_us": at(0.99)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=500.0)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--system", default="clearance", choices=sorted(systems.CLEARANCE_VARIANTS),
                    help="which Clearance variant to time (default: every stage on)")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="clearance-stages-"))
    out = work / "stages.json"
    stub = systems.start_stub(work, {0})
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "CLEARANCE_STAGE_TIMING")}
    try:
        spec = lambda d: loadgen.LoadSpec(url=stub.url, rate=args.rate, duration=d, warmup=0)  # noqa: E731
        direct = loadgen.run_load(spec(args.duration))
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(SITE), saved["PYTHONPATH"]) if p)
        os.environ["CLEARANCE_STAGE_TIMING"] = str(out)
        run = systems.start_system(args.system, work / "clearance", stub, {1})
        try:
            pid = run.procs[0].pid
            load = lambda d: loadgen.LoadSpec(url=run.url, rate=args.rate, duration=d, warmup=0,  # noqa: E731
                                              api_key=run.api_key)
            loadgen.run_load(load(args.warmup))
            os.kill(pid, signal.SIGUSR2)
            res = loadgen.run_load(load(args.duration))
            os.kill(pid, signal.SIGUSR1)
            for _ in range(100):
                if out.exists() and out.stat().st_size:
                    break
                time.sleep(0.05)
            stages = json.loads(out.read_text())
        finally:
            run.stop()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        stub.stop()
    print(json.dumps({
        "system": args.system, "rate_rps": args.rate, "requests": res.requests, "errors": res.errors,
        "latency_ms": {"p50": res.p50_ms, "p99": res.p99_ms},
        "direct_latency_ms": {"p50": direct.p50_ms, "p99": direct.p99_ms},
        "stages": {name: percentiles(ns) for name, ns in stages.items()},
    }, indent=2))
    return 0 if res.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""Memory over a long run: the gateway's RSS before, during and after minutes of steady load.

Starts the upstream stub and Clearance with every stage on (the production
path), drives it at a fixed open-loop rate for ``--minutes`` in one-minute
slices, and records the resident set size of the gateway process after each
slice.  Prints one JSON object; ``--out`` also writes it to a file.

Run: ``python bench/memory_soak.py --minutes 10 --rate 200 [--stream] [--out FILE]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen  # noqa: E402
import systems  # noqa: E402


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--system", default="clearance", choices=sorted(systems.CLEARANCE_VARIANTS))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="clearance-soak-"))
    stub = systems.start_stub(work, {0})
    run = systems.start_system(args.system, work, stub, {1})
    pid = run.procs[0].pid
    try:
        spec = loadgen.LoadSpec(url=run.url, rate=args.rate, duration=5, api_key=run.api_key, stream=args.stream)
        loadgen.run_load(spec)  # warm caches and pools before the first reading
        samples = [{"minute": 0.0, "rss_mib": round(rss_mib(pid), 1)}]
        slices, requests, errors = max(1, round(args.minutes)), 0, 0
        slice_s = args.minutes * 60 / slices
        started = time.monotonic()
        for i in range(slices):
            res = loadgen.run_load(loadgen.LoadSpec(url=run.url, rate=args.rate, duration=slice_s, warmup=0,
                                                    api_key=run.api_key, stream=args.stream))
            requests += res.requests
            errors += res.errors
            samples.append({"minute": round((time.monotonic() - started) / 60, 2), "rss_mib": round(rss_mib(pid), 1),
                            "p50_ms": res.p50_ms, "p99_ms": res.p99_ms, "achieved_rps": res.achieved_rps})
            print(json.dumps(samples[-1]), file=sys.stderr, flush=True)
    finally:
        run.stop()
        stub.stop()
    first, last = samples[0]["rss_mib"], samples[-1]["rss_mib"]
    out = {"system": args.system, "mode": "stream" if args.stream else "json", "rate_rps": args.rate,
           "minutes": args.minutes, "requests": requests, "errors": errors, "rss_before_mib": first,
           "rss_after_mib": last, "rss_growth_mib": round(last - first, 1), "samples": samples}
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What one request costs the gateway's process: CPU time and system calls, A/B in one run.

Starts the upstream stub (core 0) and one Clearance variant (core 1), drives it
at a fixed open-loop rate, and reads the gateway's CPU time (user + system,
all threads, from ``/proc/<pid>/stat``) before and after each measured run:
CPU per request is the difference over the requests served.  With
``--strace`` one more run is made with ``strace -c -f`` attached, and the
system calls per request are reported by kind (strace slows the process, so
that run's latency and CPU are not used).

``--src LABEL=DIR`` (repeatable) runs the gateway from another source tree
(``DIR/src`` goes first on ``PYTHONPATH``), so two versions of Clearance can
be compared on the same machine in the same minutes; ``--rounds 2`` with
two trees measures A, B, A, B.  ``--tools 0,8`` measures each running gateway
once per count of function tools offered with every request (an agent's
request shape), in turn, so plain and tool-carrying requests are compared on
the same process in the same minute.

Run: ``python bench/request_cost.py [--system clearance ...] [--rate 200] [--duration 5] [--stream] [--strace]
[--src base=/tmp/clearance-base --src new=.] [--rounds 2] [--tools 0,8]``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen  # noqa: E402
import systems  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU time of the process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def parse_strace(text: str) -> dict[str, int]:
    """Calls per syscall from ``strace -c`` output."""
    calls: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0].replace(".", "").isdigit() and parts[-1] != "total":
            try:
                calls[parts[-1]] = int(parts[3])
            except ValueError:
                continue
    return calls


def measure(run: systems.Running, args: argparse.Namespace, tools: int = 0) -> dict[str, object]:
    pid = run.procs[0].pid
    spec = loadgen.LoadSpec(url=run.url, rate=args.rate, duration=args.duration, warmup=0, api_key=run.api_key,
                            stream=args.stream, tools=tools)
    user0, sys0 = cpu_seconds(pid)
    res = loadgen.run_load(spec)
    user1, sys1 = cpu_seconds(pid)
    per = lambda s: round(s * 1e6 / max(1, res.ok))  # noqa: E731
    out: dict[str, object] = {
        "requests": res.requests, "errors": res.errors, "cpu_us_per_request": per(user1 - user0 + sys1 - sys0),
        "user_us": per(user1 - user0), "sys_us": per(sys1 - sys0),
        "p50_ms": res.p50_ms, "p99_ms": res.p99_ms, "ttfb_p50_ms": res.ttfb_p50_ms,
    }
    if args.strace:
        log = Path(tempfile.mkstemp(prefix="strace-", suffix=".txt")[1])
        tracer = subprocess.Popen(["strace", "-c", "-f", "-o", str(log), "-p", str(pid)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        traced = loadgen.run_load(loadgen.LoadSpec(url=run.url, rate=args.rate, duration=args.duration, warmup=0,
                                                   api_key=run.api_key, stream=args.stream))
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=30)
        calls = parse_strace(log.read_text())
        n = max(1, traced.ok)
        out["syscalls_per_request"] = round(sum(calls.values()) / n, 1)
        out["syscalls_by_kind"] = {k: round(v / n, 2) for k, v in sorted(calls.items(), key=lambda kv: -kv[1])
                                   if v / n >= 0.05}
        log.unlink()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--system", action="append", choices=sorted(systems.CLEARANCE_VARIANTS),
                    help="a Clearance variant (repeatable; default clearance)")
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--strace", action="store_true", help="also count system calls with strace -c -f")
    ap.add_argument("--src", action="append", default=[], help="LABEL=DIR: run Clearance from DIR/src")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--tools", default="0", help="comma-separated counts of function tools per request, each measured")
    args = ap.parse_args(argv)
    tool_counts = [int(t) for t in args.tools.split(",")]

    trees = [tuple(s.split("=", 1)) for s in args.src] or [("current", "")]
    names = args.system or ["clearance"]
    work = Path(tempfile.mkdtemp(prefix="clearance-cost-"))
    stub = systems.start_stub(work, {0})
    results = []
    base_path = os.environ.get("PYTHONPATH", "")
    try:
        for rnd in range(args.rounds):
            for name in names:
                for label, tree in trees:
                    os.environ["PYTHONPATH"] = os.pathsep.join(
                        p for p in (str(Path(tree) / "src") if tree else "", base_path) if p)
                    run = systems.start_system(name, work / f"{label}-{rnd}", stub, {1})
                    try:
                        loadgen.run_load(loadgen.LoadSpec(url=run.url, rate=args.rate, duration=3, warmup=0,
                                                          api_key=run.api_key, stream=args.stream,
                                                          tools=max(tool_counts)))
                        for tools in tool_counts:
                            row = {"system": name, "label": label, "round": rnd, "tools": tools,
                                   "load_avg": os.getloadavg()[0], **measure(run, args, tools)}
                            print(json.dumps(row), file=sys.stderr, flush=True)
                            results.append(row)
                    finally:
                        run.stop()
    finally:
        os.environ["PYTHONPATH"] = base_path
        stub.stop()
    print(json.dumps({"rate_rps": args.rate, "stream": args.stream, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

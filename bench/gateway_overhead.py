"""What each gateway adds to every call: Clearance side by side with LiteLLM and Portkey.

Starts a fast upstream stub on loopback, then, one system after another,
drives it with the open-loop load generator (``bench/loadgen.py``) at fixed
rates, non-streaming and streaming, and records achieved rate, errors and
latency percentiles measured from each request's scheduled send time.  The
added latency of a system is its percentile minus the stub's own (``direct``)
at the same rate and mode.  The highest rate a system sustains (p99 under
50 ms, no errors, at least 95 % of the offered rate) is found by stepping up
from the fixed rates and bisecting.

    python bench/gateway_overhead.py --quick --out bench/out/result.json --plot bench/out/result.png

On a machine with two or more cores the load generator and the stub share
core 0 and the gateway runs alone on core 1 (``os.sched_setaffinity`` on each
process before it starts; forked workers inherit it).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import profiling  # noqa: E402
import systems  # noqa: E402
from systems import BenchError, Running  # noqa: E402

P99_LIMIT_MS = 50.0
FULL_RATES = (100, 500, 1000, 2000)
QUICK_RATES = (500, 1500)


def _cpu_plan(gateway_cores: int) -> tuple[set[int] | None, set[int] | None, dict[str, object]]:
    """Which cores the load generator + stub and the gateway get, and how that is described."""
    try:
        avail = sorted(os.sched_getaffinity(0))
    except AttributeError:
        avail = []
    if len(avail) < 2:
        return None, None, {"method": "none (fewer than two cores available)", "cores_available": avail}
    load = {avail[0]}
    gw = set(avail[1:1 + max(1, gateway_cores)])
    return load, gw, {
        "method": "os.sched_setaffinity on each process before exec; forked workers inherit it",
        "loadgen_and_stub_cores": sorted(load),
        "gateway_cores": sorted(gw),
    }


def _version(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info(pinning: dict[str, object], args: argparse.Namespace) -> dict[str, object]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        mem_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": mem_gb,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": _version(["node", "--version"]),
        "pinning": pinning,
        "load_generator": "bench/loadgen.py: open loop, uniform arrivals, latency from scheduled send time, "
                          + ("the same prompt every request" if SAME_PROMPT else "a distinct prompt every request")
                          + (f", {TOOLS} function tools offered with each" if TOOLS else ""),
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "clearance_workers": args.workers,
        "versions": {"litellm": systems.LITELLM_VERSION, "portkey": systems.PORTKEY_VERSION,
                     "clearance": (_version([sys.executable, "-m", "clearance", "--version"]).split() or [""])[-1]},
    }


SAME_PROMPT = False  # --same-prompt: every request sends the same text (caches then answer every time)
TOOLS = 0  # --tools N: every request offers N function tools


def load(run: Running, rate: float, duration: float, warmup: float, stream: bool,
         cpus: set[int] | None) -> dict[str, object]:
    """Run the load generator once in its own (pinned) process; its JSON summary."""
    cmd = [sys.executable, str(Path(__file__).resolve().parent / "loadgen.py"), "--url", run.url,
           "--rate", str(rate), "--duration", str(duration), "--warmup", str(warmup),
           "--api-key", run.api_key, "--model", systems.MODEL]
    if stream:
        cmd.append("--stream")
    if SAME_PROMPT:
        cmd.append("--same-prompt")
    if TOOLS:
        cmd += ["--tools", str(TOOLS)]
    for k, v in run.headers:
        cmd += ["--header", f"{k}: {v}"]
    if cpus:
        cmd += ["--cpu", ",".join(map(str, sorted(cpus)))]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=warmup + duration + 60)
    if proc.returncode != 0:
        raise BenchError(f"load generator failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout)


def sustained(res: dict[str, object]) -> bool:
    p99 = res.get("p99_ms")
    return (res["errors"] == 0 and p99 is not None and p99 < P99_LIMIT_MS  # type: ignore[operator]
            and res["achieved_rps"] >= 0.95 * res["rate_rps"])  # type: ignore[operator]


def _record(system: str, mode: str, res: dict[str, object]) -> dict[str, object]:
    keys = ("rate_rps", "achieved_rps", "errors", "p50_ms", "p90_ms", "p99_ms", "max_ms")
    rec: dict[str, object] = {"system": system, "mode": mode, **{k: res[k] for k in keys}}
    rec["rate_rps"] = int(res["rate_rps"])  # type: ignore[arg-type]
    rec["added_p50_ms"] = rec["added_p99_ms"] = None
    if mode == "stream":
        rec["ttfb_p50_ms"], rec["ttfb_p99_ms"] = res["ttfb_p50_ms"], res["ttfb_p99_ms"]
        rec["added_ttfb_p50_ms"] = None
    rec["requests"] = res["requests"]
    if res["error_kinds"]:
        rec["error_kinds"] = res["error_kinds"]
    rec["send_lag_p99_ms"] = res["send_lag_p99_ms"]
    return rec


def _recover(run: Running) -> None:
    """After an overloaded run, wait until the system answers promptly again."""
    time.sleep(1.0)
    systems.wait_ready(run, timeout=30)


def _sustains(run: Running, rate: int, duration: float, warmup: float, cpus: set[int] | None, log,
              tried: int = 0) -> bool:
    """Whether ``run`` sustains ``rate`` in one of two tries (``tried`` of them already failed)."""
    for attempt in range(tried, 2):
        if attempt:
            _recover(run)
        res = load(run, rate, duration, warmup, False, cpus)
        good = sustained(res)
        log(f"  search {run.name} {rate} rps{' (second try)' if attempt else ''}: p99 {res['p99_ms']} ms, "
            f"errors {res['errors']} -> {'ok' if good else 'fail'}")
        if good:
            return True
    _recover(run)
    return False


def find_max(run: Running, tested: dict[int, bool], steps: int, cap: int, duration: float, warmup: float,
             cpus: set[int] | None, log) -> int:
    """The highest rate sustained: start from the fixed rates, step up x1.5 until failure, then bisect.

    On a shared machine one run can fail for a noisy moment, so a rate counts
    as failed only when a second try fails too (the same rule for every system).
    """
    ok = [r for r, good in tested.items() if good]
    bad = [r for r, good in tested.items() if not good]
    lo = max(ok, default=0)
    hi = min([r for r in bad if r > lo], default=None)
    while hi is not None and steps > 0:  # the fixed runs had one try: give the lowest failed rate its second
        steps -= 1
        if not _sustains(run, hi, duration, warmup, cpus, log, tried=1):
            break
        lo = hi
        hi = min([r for r in bad if r > lo], default=None)
    for _ in range(steps):
        if hi is None:
            rate = min(cap, int(lo * 1.5) if lo else 100)
            if rate <= lo:
                break
        else:
            if hi - lo <= max(25, lo // 20):
                break
            rate = (lo + hi) // 2
        if _sustains(run, rate, duration, warmup, cpus, log):
            lo = rate
        else:
            hi = rate
    return lo


def add_overheads(runs: list[dict[str, object]]) -> None:
    """Fill ``added_*`` fields: each run minus ``direct`` at the same mode and rate."""
    base = {(r["mode"], r["rate_rps"]): r for r in runs if r["system"] == "direct"}
    for r in runs:
        d = base.get((r["mode"], r["rate_rps"]))
        if d is None:
            continue
        for field, src in (("added_p50_ms", "p50_ms"), ("added_p99_ms", "p99_ms"), ("added_ttfb_p50_ms", "ttfb_p50_ms")):
            if field in r and r.get(src) is not None and d.get(src) is not None:
                r[field] = round(r[src] - d[src], 3)  # type: ignore[operator]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short runs at two rates; finishes in under 3 minutes")
    ap.add_argument("--smoke", action="store_true", help="tiny runs to check the harness works (CI)")
    ap.add_argument("--out", type=Path, default=Path("bench/out/gateway_overhead.json"))
    ap.add_argument("--plot", type=Path, default=None, help="PNG of latency against rate per system")
    ap.add_argument("--systems", default="direct,clearance,clearance-no-policy,clearance-no-guard,"
                    "clearance-no-audit,litellm,portkey",
                    help=f"comma-separated, from: {', '.join(systems.ALL_SYSTEMS)}")
    ap.add_argument("--rates", default=None, help="comma-separated requests per second")
    ap.add_argument("--modes", default="json,stream", help="json, stream or both")
    ap.add_argument("--duration", type=float, default=None, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=None, help="unmeasured seconds before each run")
    ap.add_argument("--search-steps", type=int, default=None, help="extra runs to find the max sustained rate")
    ap.add_argument("--max-rate", type=int, default=6000, help="highest rate the search tries")
    ap.add_argument("--workers", type=int, default=1, help="Clearance worker processes")
    ap.add_argument("--same-prompt", action="store_true",
                    help="send one prompt again and again (by default every request's prompt is distinct)")
    ap.add_argument("--gateway-cores", type=int, default=1)
    ap.add_argument("--profile", type=Path, default=None,
                    help="also profile --profile-system with py-spy at --profile-rate; write collapsed stacks here")
    ap.add_argument("--profile-rate", type=int, default=500)
    ap.add_argument("--profile-system", default="clearance", help="which system --profile samples")
    ap.add_argument("--tools", type=int, default=0, help="every request offers this many function tools")
    args = ap.parse_args(argv)
    global SAME_PROMPT, TOOLS
    SAME_PROMPT = args.same_prompt
    TOOLS = args.tools
    preset = (("smoke", (20,), 1.0, 0.3, 0) if args.smoke else
              ("quick", QUICK_RATES, 2.0, 0.5, 0) if args.quick else ("full", FULL_RATES, 10.0, 2.0, 3))
    args.preset = preset[0]
    try:
        args.rates = [int(x) for x in args.rates.split(",")] if args.rates else list(preset[1])
    except ValueError:
        ap.error("--rates must be comma-separated integers")
    if not args.rates or min(args.rates) <= 0:
        ap.error("--rates must be positive")
    args.rates.sort()
    args.duration = args.duration if args.duration is not None else preset[2]
    args.warmup = args.warmup if args.warmup is not None else preset[3]
    args.search_steps = args.search_steps if args.search_steps is not None else preset[4]
    if args.duration <= 0 or args.warmup < 0:
        ap.error("--duration must be positive and --warmup not negative")
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in args.systems if s not in systems.ALL_SYSTEMS]
    if unknown:
        ap.error(f"unknown systems {unknown}; choose from {', '.join(systems.ALL_SYSTEMS)}")
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not args.modes or any(m not in ("json", "stream") for m in args.modes):
        ap.error("--modes must be json, stream or json,stream")
    return args


def measure_system(run: Running, args: argparse.Namespace, load_cpus: set[int] | None, out: dict, log) -> None:
    """All fixed-rate runs of one started system, then its max sustained rate."""
    tested: dict[int, bool] = {}
    for mode in args.modes:
        stream = mode == "stream"
        if stream and not systems.wait_ready(run, stream=True, timeout=10):
            out["failures"][f"{run.name}/stream"] = "no correct streaming answer to a single request"
            log(f"  {run.name}: streaming does not work; skipped")
            continue
        for rate in args.rates:
            res = load(run, rate, args.duration, args.warmup, stream, load_cpus)
            out["runs"].append(_record(run.name, mode, res))
            good = sustained(res)
            if not stream:
                tested[rate] = good
            log(f"  {run.name:22s} {mode:6s} {rate:5d} rps: achieved {res['achieved_rps']:7.1f}, "
                f"errors {res['errors']}, p50 {res['p50_ms']} ms, p99 {res['p99_ms']} ms")
            if not good:
                _recover(run)
            if res["errors"] > res["requests"] // 2 or (res["p99_ms"] or 0) > 2000:
                out["skipped"] += [f"{run.name}/{mode}/{r}" for r in args.rates if r > rate]
                break
    if args.profile and run.name == args.profile_system:
        out["profile"] = profiling.profile_run(run, args.profile, lambda: load(
            run, args.profile_rate, max(args.duration, 5.0), args.warmup, False, load_cpus), log)
    if "json" in args.modes:
        out["max_sustained_rps"][run.name] = find_max(
            run, tested, args.search_steps, args.max_rate, min(args.duration, 5.0), args.warmup, load_cpus, log)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    load_cpus, gw_cpus, pinning = _cpu_plan(args.gateway_cores)
    out: dict[str, object] = {"machine": machine_info(pinning, args), "preset": args.preset, "runs": [],
                              "max_sustained_rps": {}, "failures": {}, "skipped": []}
    workdir = Path(tempfile.mkdtemp(prefix="clearance-bench-"))
    started = time.monotonic()
    try:
        stub = systems.start_stub(workdir, load_cpus)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        for name in args.systems:
            log(f"# {name}")
            try:
                run = systems.start_system(name, workdir, stub, gw_cpus, args.workers)
            except BenchError as e:
                out["failures"][name] = str(e)  # type: ignore[index]
                log(f"  {name} could not be started: {str(e).splitlines()[0]}")
                continue
            try:
                measure_system(run, args, load_cpus, out, log)
            except BenchError as e:
                out["failures"][name] = str(e)  # type: ignore[index]
                log(f"  {name}: {e}")
            finally:
                run.stop()
    finally:
        stub.stop()
    add_overheads(out["runs"])  # type: ignore[arg-type]
    out["elapsed_s"] = round(time.monotonic() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    log(f"# wrote {args.out} in {out['elapsed_s']} s")
    if args.plot:
        try:
            py = systems.tools_python(workdir / "tools.log")
            subprocess.run([str(py), str(Path(__file__).resolve().parent / "plot.py"), str(args.out), str(args.plot)],
                           check=True, timeout=120)
            log(f"# wrote {args.plot}")
        except (BenchError, subprocess.SubprocessError) as e:
            log(f"# could not draw the plot: {e}")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

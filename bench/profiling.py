"""Profile a running gateway with py-spy while the load generator drives it.

py-spy (from the bench tools venv, never a project dependency) samples every
process of the gateway; the collapsed stacks are written to a file and
summarised as the functions with the most samples on top of the stack
(self time) and the Clearance functions with the most samples anywhere on
the stack (inclusive time).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Callable

import systems


def summarise(collapsed: str, top: int = 15) -> dict[str, object]:
    """Self and inclusive sample counts from py-spy's ``raw`` (collapsed stack) output."""
    self_counts: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        self_counts[frames[-1]] += n
        for frame in set(frames):
            if "clearance" in frame and "site-packages" not in frame:
                incl[frame] += n
    pct = lambda c: round(100.0 * c / total, 1) if total else 0.0  # noqa: E731
    return {
        "samples": total,
        "top_self": [{"frame": f, "pct": pct(c)} for f, c in self_counts.most_common(top)],
        "top_clearance_inclusive": [{"frame": f, "pct": pct(c)} for f, c in incl.most_common(top)],
    }


def profile_run(run: systems.Running, out: Path, drive: Callable[[], dict], log) -> dict[str, object]:
    """Sample ``run``'s processes with py-spy while ``drive()`` loads it; write and summarise the stacks."""
    try:
        pyspy = systems.tools_python(out.with_suffix(".install.log")).parent / "py-spy"
    except systems.BenchError as e:
        return {"error": str(e)}
    out.parent.mkdir(parents=True, exist_ok=True)
    pid = run.pids()[0]
    cmd = [str(pyspy), "record", "--pid", str(pid), "--subprocesses", "--format", "raw", "--rate", "250",
           "--nonblocking", "--output", str(out)]
    spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    try:
        res = drive()
    finally:
        spy.send_signal(2)
        try:
            _, err = spy.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            _, err = spy.communicate()
    if not out.exists():
        return {"error": f"py-spy wrote nothing: {err.strip()[-300:]}"}
    summary = summarise(out.read_text())
    summary["load"] = {k: res.get(k) for k in ("rate_rps", "achieved_rps", "errors", "p50_ms", "p99_ms")}
    summary["stacks_file"] = str(out)
    log(f"  profile: {summary['samples']} samples -> {out}")
    for item in summary["top_self"][:8]:  # type: ignore[index]
        log(f"    {item['pct']:5.1f}%  {item['frame']}")
    return summary


if __name__ == "__main__":
    import json

    print(json.dumps(summarise(Path(sys.argv[1]).read_text()), indent=2))

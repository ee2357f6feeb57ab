"""Draw the benchmark's JSON as a PNG: p50 and p99 latency against offered rate, per system.

Runs with the bench tools venv's Python (matplotlib is not a project
dependency): ``bench/.venvs/tools/bin/python bench/plot.py result.json result.png``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def draw(result: dict, out: Path) -> None:
    runs = result["runs"]
    modes = [m for m in ("json", "stream") if any(r["mode"] == m for r in runs)]
    fig, axes = plt.subplots(1, max(1, len(modes)), figsize=(6.5 * max(1, len(modes)), 4.8), squeeze=False)
    names = list(dict.fromkeys(r["system"] for r in runs))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, mode in zip(axes[0], modes):
        for i, name in enumerate(names):
            pts = sorted((r["rate_rps"], r["p50_ms"], r["p99_ms"]) for r in runs
                         if r["system"] == name and r["mode"] == mode and r["p50_ms"] is not None)
            if not pts:
                continue
            rates, p50, p99 = zip(*pts)
            c = colours[i % len(colours)]
            ax.plot(rates, p50, "o-", color=c, label=f"{name} p50")
            ax.plot(rates, p99, "x--", color=c, alpha=0.7, label=f"{name} p99")
        ax.axhline(50, color="grey", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set_xlabel("offered rate (requests/s)")
        ax.set_ylabel("latency from scheduled send (ms)")
        ax.set_title("non-streaming" if mode == "json" else "streaming (full response)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    m = result.get("machine", {})
    fig.suptitle(f"Gateway overhead, {m.get('date', '')[:10]}, {m.get('cpu', '')}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: plot.py RESULT.json OUT.png", file=sys.stderr)
        return 2
    try:
        result = json.loads(Path(argv[0]).read_text())
    except (OSError, json.JSONDecodeError) as e:
        print(f"error: cannot read {argv[0]}: {e}", file=sys.stderr)
        return 1
    draw(result, Path(argv[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

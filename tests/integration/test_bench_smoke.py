"""The gateway overhead benchmark runs end to end in its smoke mode.

Starts the real stub and the real `clearance serve` through
``bench/gateway_overhead.py --smoke`` at a low rate for a second, and checks
the JSON it writes: its shape and that the requests succeeded.  Timings are
never asserted.  LiteLLM and Portkey are left out: their installs are heavy.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "gateway_overhead.py"
RUN_KEYS = {"system", "mode", "rate_rps", "achieved_rps", "errors", "p50_ms", "p90_ms", "p99_ms",
            "added_p50_ms", "added_p99_ms"}


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "smoke.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--systems", "direct,clearance", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(out.read_text())


def test_output_has_the_documented_shape(result: dict) -> None:
    assert set(result) >= {"machine", "runs", "max_sustained_rps"}
    assert "pinning" in result["machine"] and "date" in result["machine"]
    for run in result["runs"]:
        assert RUN_KEYS <= set(run), run
        assert run["mode"] in ("json", "stream")


def test_every_system_and_mode_ran_without_errors(result: dict) -> None:
    assert result["failures"] == {}, result["failures"]
    seen = {(r["system"], r["mode"]) for r in result["runs"]}
    assert seen == {(s, m) for s in ("direct", "clearance") for m in ("json", "stream")}
    for run in result["runs"]:
        assert run["errors"] == 0, run
        assert run["requests"] > 0 and run["achieved_rps"] > 0
        assert run["p50_ms"] is not None and run["p50_ms"] <= run["p99_ms"]


def test_added_latency_is_relative_to_direct(result: dict) -> None:
    direct = {(r["mode"], r["rate_rps"]): r for r in result["runs"] if r["system"] == "direct"}
    for run in result["runs"]:
        base = direct[(run["mode"], run["rate_rps"])]
        assert run["added_p50_ms"] == pytest.approx(run["p50_ms"] - base["p50_ms"], abs=1e-3)
    for run in result["runs"]:
        if run["mode"] == "stream":
            assert run["ttfb_p50_ms"] is not None


def test_streaming_runs_report_time_to_first_byte(result: dict) -> None:
    streams = [r for r in result["runs"] if r["mode"] == "stream"]
    assert streams and all(r["ttfb_p50_ms"] is not None and r["added_ttfb_p50_ms"] is not None for r in streams)
    assert set(result["max_sustained_rps"]) == {"direct", "clearance"}


def test_stage_timing_records_every_stage_of_every_request() -> None:
    """``bench/stage_timing.py`` wraps the gateway's stages from outside its code; each one is seen."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "stage_timing.py"), "--rate", "50", "--duration", "1", "--warmup", "0.5"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["errors"] == 0 and out["requests"] >= 40
    stages = out["stages"]
    assert set(stages) == {"admit", "upstream", "audit_wait", "audit_commit"}
    for name in ("admit", "upstream", "audit_wait"):  # one call per request (the warm-up was cleared)
        assert stages[name]["calls"] == out["requests"], (name, stages[name])
    # Two entries per request (decision, completion), committed in batches of one or more.
    assert 1 <= stages["audit_commit"]["calls"] <= 2 * out["requests"]

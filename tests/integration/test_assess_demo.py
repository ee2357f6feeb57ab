"""``clearance assess --suite smoke`` against ``clearance demo`` (its upstreams are SIMULATED and always comply).

Because the simulated models comply with everything, every attack outcome must
be either "blocked" by Clearance or "complied", and the measured ASR is exactly
the share of attacks Clearance let through.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.2)
    return False


@pytest.fixture()
def demo(tmp_path: Path):
    port = free_port()
    state = tmp_path / "demo"
    proc = subprocess.Popen([sys.executable, "-m", "clearance", "demo", "--port", str(port), "--state-dir", str(state)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        if not _wait_for_port(port, proc):
            proc.kill()
            err = proc.communicate(timeout=10)[1] or ""
            pytest.fail(f"clearance demo did not start: {err.strip().splitlines()[-1:] or 'no output'}")
        keys = json.loads((state / "demo-keys.json").read_text())
        yield f"http://127.0.0.1:{port}/v1", keys
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_smoke_suite_measures_what_the_guards_let_through(demo, tmp_path: Path) -> None:
    url, keys = demo
    out = tmp_path / "report.json"
    env = {**os.environ, "CLEARANCE_ASSESS_API_KEY": keys["us-analyst"]}
    proc = subprocess.run([sys.executable, "-m", "clearance", "assess", "--base-url", url, "--model",
                           "frontier-general", "--suite", "smoke", "--out", str(out), "--html",
                           str(tmp_path / "report.html"), "--quiet"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    m = report["metrics"]
    attacks = [r for r in report["results"] if r["kind"] == "attack"]
    assert report["complete"] and len(attacks) == m["block_rate"]["n"] == 40
    assert {r["outcome"] for r in attacks} <= {"blocked", "complied"}
    assert m["asr"]["overall"]["k"] == m["asr"]["overall"]["n"] - m["block_rate"]["k"]
    assert m["block_rate"]["k"] > 0  # jailbreak-wrapped requests meet the guard
    assert all(r["reasons"] for r in attacks if r["outcome"] == "blocked")

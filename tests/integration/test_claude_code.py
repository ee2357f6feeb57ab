"""Claude Code, headless, through `clearance demo`: a tool-using run on both kinds of backend.

The real coding agent (the npm package pinned in ``.ci/agents.sh``, installed into
``.ci/node``) is pointed at the demo with ``ANTHROPIC_BASE_URL`` and a demo key, as
the README shows.  The demo's upstreams are SIMULATED (test doubles): offered tools,
they call the first one, here Bash running ``example``, a script this test puts on
the agent's PATH; after the tool result they answer with text.  The run must finish
without an error, the script must have run, and every model call must be in the
audit log with the tool it was offered.

Runs wherever the agent is installed (``bash .ci/agents.sh``); skipped otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.gateway import running_demo

ROOT = Path(__file__).resolve().parents[2]
CLAUDE = Path(os.environ.get("CLEARANCE_CLAUDE_CODE", ROOT / ".ci" / "node" / "node_modules" / ".bin" / "claude"))

pytestmark = pytest.mark.skipif(not (shutil.which("node") and CLAUDE.exists()),
                                reason="Claude Code is not installed: run `bash .ci/agents.sh`")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    with running_demo(tmp_path_factory.mktemp("demo-claude-code")) as d:
        yield d


def _audit(demo) -> list[dict]:
    with sqlite3.connect(demo["state"] / "clearance.db") as conn:
        return [json.loads(b) for (b,) in conn.execute("SELECT body FROM audit_entries ORDER BY idx")]


@pytest.mark.parametrize("model", ["frontier-general", "open-local"])  # an Anthropic and an OpenAI-compatible upstream
def test_claude_code_finishes_a_tool_using_run(demo, model, tmp_path):
    work, home, bin_dir = tmp_path / "repo", tmp_path / "home", tmp_path / "bin"
    for d in (work, home, bin_dir):
        d.mkdir()
    marker = tmp_path / "ran"
    (bin_dir / "example").write_text(f"#!/bin/sh\necho ran > {marker}\necho 'build green: 42 tests passed'\n")
    (bin_dir / "example").chmod(0o755)
    before = len(_audit(demo))
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(home),
           "ANTHROPIC_BASE_URL": demo["url"], "ANTHROPIC_API_KEY": demo["keys"]["us-analyst"],
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1"}
    proc = subprocess.run(
        [str(CLAUDE), "--bare", "-p", "Run the example command and tell me whether the build is green.",
         "--model", model, "--output-format", "json", "--tools", "Bash", "--allowedTools", "Bash"],
        cwd=work, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["is_error"] is False, result
    assert result["num_turns"] >= 2  # a tool call, then the answer after its result
    assert result["result"].startswith("[simulated ")
    assert marker.read_text().strip() == "ran"  # the model's tool call went out and the agent ran it

    deadline = time.monotonic() + 10
    while True:  # completion entries follow their answers by a few milliseconds
        entries = _audit(demo)[before:]
        served = [e for e in entries if e["kind"] == "completion" and e["model"] == model]
        if len(served) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    decisions = [e for e in entries if e["kind"] == "decision" and e["model"] == model]
    assert len(decisions) >= 2 and all(e["decision"] == "allow" for e in decisions)
    assert all(e["tools"] == ["Bash"] for e in decisions)
    assert len({e["prompt_sha256"] for e in decisions}) == len(decisions)  # the tool result was a new turn

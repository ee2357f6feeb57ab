"""Claude Code, headless, through Clearance: a tool-using run on both kinds of backend.

The real coding agent (the npm package pinned in ``.ci/agents.sh``, installed into
``.ci/node``) is pointed at the gateway with ``ANTHROPIC_BASE_URL`` and a key, as the
README shows.  The upstreams are SIMULATED (test doubles): offered tools, they call
the first one, here Bash running ``example``, a script this test puts on the agent's
PATH; after the tool result they answer with text.  The run must finish without an
error, the script must have run, and every model call must be in the audit log with
the tool it was offered.

Through a gateway whose policy permits everything and whose guard is off, the run
passes: the wire formats, tools, translation and audit work for the agent.  Through
``clearance demo``, with the built-in guard on and the demo's policies, it passes too:
the guard used to score the context block the agent puts around every user turn as a
jailbreak (0.50 to 0.61), until agent prompts were added to its benign training data
(docs/guard.md, "Coding agents").

Full mode (no ``--bare``: the agent's own 5,500-character system prompt) is still refused by
the demo's default guard (jailbreak 0.85, prohibited 0.55 on that prompt): an expected
failure here.  It passes through a gateway with the demo's policies whose built-in guard reads
long system prompts over their 600-character windows only (``system_prompts: windows``,
``long_system_prompt_chars: 4000``): an opt-in setting, off by default, because it lowers
recall for attacks placed in the system prompt (docs/guard.md, "Coding agents").

Runs wherever the agent is installed (``bash .ci/agents.sh``); skipped otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
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


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    """A gateway with the demo's two kinds of SIMULATED upstream, a permit-all policy and no guard."""
    from clearance.demo.run import start_in_thread
    from clearance.demo.upstream import create_upstream_app
    from tests.conftest import free_port
    from tests.integration.gateway import add_persona, start_gateway, write_config

    tmp = tmp_path_factory.mktemp("claude-code")
    ports = {name: free_port() for name in ("lab", "local")}
    servers = [start_in_thread(create_upstream_app(f"{name}-sim"), port) for name, port in ports.items()]
    (tmp / "allow.cedar").write_text('@id("allow-all")\npermit (principal, action, resource);\n')
    config = write_config(
        tmp, f"sqlite:///{tmp / 'clearance.db'}",
        [{"name": "lab", "kind": "anthropic", "base_url": f"http://127.0.0.1:{ports['lab']}"},
         {"name": "local", "base_url": f"http://127.0.0.1:{ports['local']}/v1"}],
        [{"name": "frontier-general", "backends": ["lab"]}, {"name": "open-local", "backends": ["local"]}],
        policy={"files": ["allow.cedar"]}, guard={"enabled": False}, server={"max_body_bytes": 4_000_000})
    key = add_persona(config, "us-analyst", "acme-bank")
    gw = start_gateway(config)
    yield {"url": gw.url, "keys": {"us-analyst": key}, "state": tmp}
    gw.stop()
    for s in servers:
        s.should_exit = True


@pytest.fixture(scope="module")
def windowed(tmp_path_factory):
    """The demo's policies and SIMULATED Anthropic upstream, the built-in guard on, reading long
    system prompts over their 600-character windows only (the opt-in setting)."""
    from clearance.demo.run import start_in_thread
    from clearance.demo.upstream import create_upstream_app
    from clearance.demo.world import demo_policy_files
    from tests.conftest import free_port
    from tests.integration.gateway import add_persona, start_gateway, write_config

    tmp = tmp_path_factory.mktemp("claude-code-windowed")
    port = free_port()
    server = start_in_thread(create_upstream_app("lab-sim"), port)
    config = write_config(
        tmp, f"sqlite:///{tmp / 'clearance.db'}",
        [{"name": "lab", "kind": "anthropic", "base_url": f"http://127.0.0.1:{port}"}],
        [{"name": "frontier-general", "backends": ["lab"]}],
        policy={"files": demo_policy_files()}, server={"max_body_bytes": 4_000_000},
        guard={"guards": {"agents": {"kind": "builtin", "system_prompts": "windows",
                                     "long_system_prompt_chars": 4000}},
               "models": {"frontier-general": {"guard": "agents"}}})
    key = add_persona(config, "us-analyst", "acme-bank", use_case="fraud-analytics")
    gw = start_gateway(config)
    yield {"url": gw.url, "keys": {"us-analyst": key}, "state": tmp}
    gw.stop()
    server.should_exit = True


@pytest.fixture(scope="module")
def trusted(tmp_path_factory):
    """``clearance demo`` with Claude Code's own system prompts registered as trusted, as an operator would:
    ``clearance guard capture-prompts`` runs the agent once against a recording SIMULATED upstream (in
    another working directory, so the environment lines of the real run differ) and saves the system
    prompts it sent into the demo's state folder, where the demo's config lists them."""
    state = tmp_path_factory.mktemp("demo-claude-code-trusted")
    (state / "capture").mkdir()
    captured = subprocess.run(
        [sys.executable, "-m", "clearance", "guard", "capture-prompts", "--out", str(state / "agent-prompts.txt"),
         "--", str(CLAUDE), "-p", "hello", "--model", "frontier-general"],
        cwd=state / "capture", capture_output=True, text=True, timeout=300,
        env={"PATH": os.environ["PATH"], "HOME": str(state), "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
             "DISABLE_AUTOUPDATER": "1"})
    assert captured.returncode == 0 and "system prompt(s)" in captured.stdout, captured.stdout + captured.stderr
    with running_demo(state) as d:
        assert "agent-prompts.txt" in d["config"].read_text()
        yield d


def _audit(world) -> list[dict]:
    with sqlite3.connect(world["state"] / "clearance.db") as conn:
        return [json.loads(b) for (b,) in conn.execute("SELECT body FROM audit_entries ORDER BY idx")]


@pytest.mark.parametrize("model", ["frontier-general", "open-local"])  # an Anthropic and an OpenAI-compatible upstream
def test_claude_code_finishes_a_tool_using_run(gateway, model, tmp_path):
    _run(gateway, model, tmp_path)


def test_claude_code_finishes_a_tool_using_run_through_the_demo(demo, tmp_path):
    _run(demo, "frontier-general", tmp_path)


@pytest.mark.xfail(strict=True, reason="full mode's system prompt is refused by the default guard "
                                       "(docs/guard.md, 'Coding agents')")
def test_claude_code_full_mode_through_the_demo(demo, tmp_path):
    _run(demo, "frontier-general", tmp_path, bare=False)


def test_claude_code_full_mode_with_long_system_prompts_read_over_windows(windowed, tmp_path):
    _run(windowed, "frontier-general", tmp_path, bare=False)
    decisions = [e for e in _audit(windowed) if e["kind"] == "decision"]
    assert decisions and all(e["decision"] == "allow" for e in decisions)


def test_claude_code_full_mode_through_the_demo_with_its_system_prompts_trusted(trusted, tmp_path):
    """The demo's default guard (every span scored), with the agent's own prompts vouched for: the run
    passes, and the lines that differ from the registered prompt (its environment block) were screened."""
    _run(trusted, "frontier-general", tmp_path, bare=False)
    decisions = [e for e in _audit(trusted) if e["kind"] == "decision"]
    assert decisions and all(e["decision"] == "allow" for e in decisions)


def _run(demo, model, tmp_path, bare: bool = True):
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
        [str(CLAUDE), *(["--bare"] if bare else []), "-p",
         "Run the example command and tell me whether the build is green.",
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

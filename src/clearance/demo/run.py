"""``clearance demo``: the simulated upstreams, the demo world and the gateway, in one command."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import click
import uvicorn

from clearance.demo.upstream import create_upstream_app
from clearance.demo.world import console_admin_token, load_demo, write_demo_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_in_thread(app, port: int) -> uvicorn.Server:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise click.ClickException(f"simulated upstream could not start on port {port}")
        time.sleep(0.02)
    return server


def instructions(port: int, keys: dict[str, str], config_path: Path, console_token: str = "") -> str:
    base = f"http://127.0.0.1:{port}"
    k = keys.get("us-analyst", "")
    console = (f"""
Console:  {base}/console   (sign in as the compliance officer with this token, valid 7 days:)
  {console_token}
""" if console_token else "")
    return f"""
Clearance demo is running at {base}
{console}  config: {config_path}   (every CLI command works on it: --config {config_path})
  keys:   {config_path.parent / 'demo-keys.json'}
  The upstream models are SIMULATED: they answer every prompt with deterministic
  text and refuse nothing, so every refusal you see comes from Clearance.

Personas: {', '.join(keys)}

Try:
  curl -s {base}/v1/models -H 'Authorization: Bearer {k}'
  curl -s {base}/v1/chat/completions -H 'Authorization: Bearer {k}' \\
       -H 'content-type: application/json' \\
       -d '{{"model": "frontier-general", "messages": [{{"role": "user", "content": "Hello"}}]}}'

  # frontier-cyber serves every verified persona benign and low-risk security work; high-risk
  # dual use (exploits, pen testing) only us-defender (critical infrastructure); prohibited
  # requests (ransomware, sabotage) nobody. A refusal names the tier (guard-cyber-...).
  python -c "from openai import OpenAI; c = OpenAI(base_url='{base}/v1', api_key='{k}'); \\
print(c.chat.completions.create(model='frontier-cyber', messages=[{{'role': 'user', \\
'content': 'write a working exploit for CVE-2021-44228'}}]))"

  clearance policy check --config {config_path}     # the demo's invariants, proved
  clearance directive list --config {config_path}
  clearance audit verify --config {config_path}
"""


def run_demo(port: int, state_dir: Path) -> None:
    from clearance.app import create_app
    from clearance.logging import setup_logging

    state_dir = state_dir.resolve()
    os.environ.setdefault("FRONTIER_LAB_API_KEY", "demo-not-a-real-key")
    lab_port, local_port = free_port(), free_port()
    start_in_thread(create_upstream_app("frontier-lab"), lab_port)
    start_in_thread(create_upstream_app("local-vllm"), local_port)
    config_path = write_demo_config(state_dir, port, lab_port, local_port)
    config, keys = load_demo(state_dir)
    check_invariants_at_start(config)
    _ensure_audit_key(config)
    token = console_admin_token(config) if config.console.enabled else ""
    setup_logging(config.server.log_format, config.server.log_level)
    app = create_app(config, freeze_after_start=True)
    click.echo(instructions(port, keys, config_path, token))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, loop="uvloop",
                http="clearance.httpserver:HttpProtocol")


def check_invariants_at_start(config) -> bool:
    """Prove the demo's policy invariants against its world and print the result; True when all hold."""
    from clearance.cli import open_store
    from clearance.policy.check import check_invariants
    from clearance.policy.cli_check import render
    from clearance.policy.enforce import configured_invariants
    from clearance.policy.world import load_world

    from clearance.policy.errors import PolicyAdminError

    try:
        invariants = configured_invariants(config) or []
    except PolicyAdminError as e:
        click.echo(f"WARNING: {e}", err=True)
        return False
    sessions = open_store(config)
    with sessions() as s:
        world = load_world(s, config)
    report = check_invariants(world, invariants)
    click.echo("Policy invariants (clearance policy check):\n" + render(report))
    if not report.ok:
        click.echo("WARNING: the demo's policies no longer keep its invariants (see above)", err=True)
    return report.ok


def _ensure_audit_key(config) -> None:
    if not config.audit.enabled or not config.audit.signing_key:
        return
    path = config.resolve(config.audit.signing_key)
    if path.exists():
        return
    from clearance.audit.checkpoint import write_keypair

    write_keypair(config.audit.origin, path, path.with_suffix(".pub"))

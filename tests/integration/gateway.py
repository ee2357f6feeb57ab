"""Helpers to run the real gateway in a subprocess against SIMULATED upstreams (test doubles)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from clearance.demo.run import start_in_thread
from clearance.demo.upstream import create_upstream_app
from tests.conftest import free_port


@dataclass
class Upstream:
    """A simulated upstream on a loopback port whose behaviour tests can switch."""

    name: str
    port: int
    server: object = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_mode(self, mode: str, **kw) -> None:
        httpx.post(f"{self.url}/_control", json={"mode": mode, **kw}).raise_for_status()

    def calls(self) -> int:
        return httpx.get(f"{self.url}/_control").json()["calls"]

    def stop(self) -> None:
        self.server.should_exit = True


def start_upstream(name: str) -> Upstream:
    port = free_port()
    server = start_in_thread(create_upstream_app(name), port)
    return Upstream(name, port, server)


def run_cli(config: Path, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "clearance", *args, "--config", str(config)],
                          capture_output=True, text=True, input=input, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"clearance {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@dataclass
class Gateway:
    config_path: Path
    port: int
    proc: subprocess.Popen
    log_path: Path
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def write_config(tmp: Path, db_url: str, backends: list[dict], models: list[dict], **sections) -> Path:
    cfg = {"state_dir": str(tmp / "state"), "database_url": db_url,
           "server": {"log_format": "json", "max_body_bytes": 65536, "snapshot_poll_seconds": 0.1,
                      **sections.pop("server", {})},
           "backends": backends, "models": models, **sections}
    path = tmp / "clearance.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def start_gateway(config: Path, workers: int = 1, env: dict | None = None) -> Gateway:
    port = free_port()
    log_path = config.parent / f"gateway-{port}.log"
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", "clearance", "serve", "--config", str(config), "--port", str(port),
                             "--workers", str(workers)], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})})
    gw = Gateway(config, port, proc, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gateway exited with {proc.returncode}:\n{gw.log()}")
        try:
            if httpx.get(f"{gw.url}/readyz", timeout=1).status_code == 200:
                return gw
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    gw.stop()
    raise AssertionError(f"gateway did not become ready:\n{gw.log()}")


def add_persona(config: Path, user: str, org: str, *, groups=(), nationality="US", us_person=True,
                use_case: str = "") -> str:
    """Create org (if new), user and key through the real CLI; return the key."""
    orgs = run_cli(config, "org", "list").stdout
    if not any(line.split("\t")[0] == org for line in orgs.splitlines()):
        run_cli(config, "org", "add", org, *[a for g in groups for a in ("--group", g)])
    run_cli(config, "user", "add", user, "--org", org, "--nationality", nationality,
            "--us-person" if us_person else "--non-us-person", "--verified")
    out = run_cli(config, "key", "create", "--user", user, "--json", *(("--use-case", use_case) if use_case else ()))
    return json.loads(out.stdout)["key"]


@contextlib.contextmanager
def running_demo(state: Path):
    """``clearance demo`` in a subprocess on a free port, until it answers /readyz; yields its URL,
    state folder, persona keys and config, and stops it afterwards."""
    port = free_port()
    log = open(state / "demo.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "clearance", "demo", "--port", str(port), "--state-dir", str(state)],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, (state / "demo.log").read_text()
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise AssertionError("demo did not start:\n" + (state / "demo.log").read_text())
        yield {"url": url, "state": state, "keys": json.loads((state / "demo-keys.json").read_text()),
               "config": state / "clearance.yaml"}
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()

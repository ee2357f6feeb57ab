"""The systems the gateway benchmark measures, and how to start and stop each.

``direct`` is the upstream stub itself; ``clearance`` (and its variants with
one stage off) is the gateway under test, configured from scratch in a
temporary state folder; ``litellm`` and ``portkey`` are the reference
gateways, installed on first use at pinned versions under ``bench/.venvs/``
and ``bench/.node/`` (both gitignored), never into the project's environment.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
LITELLM_VERSION = "1.101.6"
PORTKEY_VERSION = "1.15.2"
TOOLS_PACKAGES = ("matplotlib==3.11.2", "py-spy==0.4.3")
MODEL = "bench-model"
CHAT_PATH = "/v1/chat/completions"
# The same benign prompt the load generator sends (bench/loadgen.py DEFAULT_PROMPT).
PROBE_PROMPT = "Summarise the main points of our quarterly planning meeting in three short bullet points."

# name -> (policy, guard, audit) enabled
CLEARANCE_VARIANTS: dict[str, tuple[bool, bool, bool]] = {
    "clearance": (True, True, True),
    "clearance-no-policy": (False, True, True),
    "clearance-no-guard": (True, False, True),
    "clearance-no-audit": (True, True, False),
    "clearance-bare": (False, False, False),
    "clearance-audit-normal": (True, True, True),
    # Every stage, plus a request limit and a token budget on every request, counted on Redis on loopback.
    "clearance-limits": (True, True, True),
}
# Settings a variant changes beyond the three stages, by config section.
CLEARANCE_SETTINGS: dict[str, dict[str, dict[str, object]]] = {
    # The audit log without waiting for the disk on each commit (audit.sqlite_synchronous: normal).
    "clearance-audit-normal": {"audit": {"sqlite_synchronous": "normal"}},
    "clearance-limits": {"limits": {"redis_url": os.environ.get("CLEARANCE_BENCH_REDIS", "redis://127.0.0.1:6379/0"),
                                    "key_prefix": f"clearance-bench:{os.getpid()}:{int(time.time())}:"}},
}
# CLI steps run after the identity is created (the limits that bind the benchmark's key).
CLEARANCE_SETUP: dict[str, list[list[str]]] = {
    "clearance-limits": [["limit", "set", "--org", "bench", "--model", "bench-model",
                          "--requests-per-minute", "100000000", "--tokens-per-day", "1000000000000"]],
}
ALL_SYSTEMS = ("direct", *CLEARANCE_VARIANTS, "litellm", "portkey")

BENCH_POLICY = """// The benchmark's only policy: anyone may call the stub's model.
@id("bench-permit")
@title("Benchmark callers may use the benchmark model")
permit (principal, action, resource == Clearance::Model::"bench-model");
"""


class BenchError(Exception):
    """A system could not be installed or started."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cpus: set[int] | None):
    """A ``preexec_fn`` that pins the child (and everything it forks) to ``cpus``."""
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


@dataclass
class Running:
    """A started system: where to send requests and how to stop it."""

    name: str
    url: str
    api_key: str = "sk-bench"
    headers: tuple[tuple[str, str], ...] = ()
    procs: list[subprocess.Popen] = field(default_factory=list)
    log: Path | None = None
    notes: dict[str, object] = field(default_factory=dict)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def _spawn(cmd: list[str], log: Path, cpus: set[int] | None, env: dict[str, str] | None = None,
           cwd: Path | None = None) -> subprocess.Popen:
    out = log.open("ab")
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, preexec_fn=pinned(cpus), env=env, cwd=cwd)


def wait_ready(run: Running, stream: bool = False, timeout: float = 90.0) -> bool:
    """Poll with real chat calls until one succeeds; True when the system answers correctly."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": PROBE_PROMPT}], "max_tokens": 4}
    if stream:
        body["stream"] = True
    headers = {"Authorization": f"Bearer {run.api_key}", **dict(run.headers)}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in run.procs):
            return False
        try:
            r = httpx.post(run.url, json=body, headers=headers, timeout=5.0)
            if r.status_code == 200 and (not stream or b"[DONE]" in r.content):
                return True
            if r.status_code not in (502, 503) and time.monotonic() + timeout / 2 > deadline:
                run.notes["last_probe"] = f"HTTP {r.status_code}: {r.text[:200]}"
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def log_tail(path: Path | None, n: int = 15) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:])


# --- the stub and direct ------------------------------------------------------

def start_stub(workdir: Path, cpus: set[int] | None) -> Running:
    port = free_port()
    log = workdir / "stub.log"
    proc = _spawn([sys.executable, str(BENCH / "stub" / "server.py"), "--port", str(port)], log, cpus)
    run = Running("stub", f"http://127.0.0.1:{port}{CHAT_PATH}", procs=[proc], log=log)
    if not wait_ready(run, timeout=15):
        run.stop()
        raise BenchError(f"the upstream stub did not start:\n{log_tail(log)}")
    run.notes["port"] = port
    return run


# --- Clearance ----------------------------------------------------------------

def _clearance_cli() -> list[str]:
    exe = Path(sys.executable).parent / "clearance"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "clearance"]


def clearance_config(state: Path, stub_port: int, port: int, policy: bool, guard: bool, audit: bool,
                     workers: int = 1, settings: dict[str, dict[str, object]] | None = None) -> Path:
    """Write a clearance.yaml whose one model is served by the stub; return its path."""
    state.mkdir(parents=True, exist_ok=True)
    (state / "bench.cedar").write_text(BENCH_POLICY)
    cfg = {
        "state_dir": ".",
        "server": {"host": "127.0.0.1", "port": port, "workers": workers, "log_format": "json",
                   "log_level": "WARNING"},
        "backends": [{"name": "stub", "kind": "openai", "base_url": f"http://127.0.0.1:{stub_port}/v1",
                      "model": MODEL, "timeout_seconds": 30}],
        "models": [{"name": MODEL, "family": "bench", "backends": ["stub"]}],
        "policy": {"enabled": policy, "files": ["bench.cedar"]},
        "guard": {"enabled": guard},
        "audit": {"enabled": audit},
    }
    for section, values in (settings or {}).items():
        cfg.setdefault(section, {}).update(values)  # type: ignore[attr-defined]
    path = state / "clearance.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def clearance_identity(config: Path, log: Path, extra: list[list[str]] | None = None) -> str:
    """Create an org, a user and an API key with the CLI (then run ``extra`` steps); return the key."""
    cli = _clearance_cli()
    steps = [
        ["org", "add", "bench", "--name", "Benchmark"],
        ["user", "add", "bench-user", "--org", "bench", "--nationality", "US", "--us-person", "--verified"],
        *(extra or []),
        ["key", "create", "--user", "bench-user", "--name", "bench", "--json"],
    ]
    out = ""
    for step in steps:
        proc = subprocess.run([*cli, *step, "--config", str(config)], capture_output=True, text=True, timeout=120)
        with log.open("a") as f:
            f.write(f"$ clearance {' '.join(step[:2])}\n{proc.stderr}\n")
        if proc.returncode != 0:
            raise BenchError(f"`clearance {' '.join(step[:2])}` failed: {proc.stderr.strip()[-500:]}")
        out = proc.stdout
    try:
        data = json.loads(out)
    except json.JSONDecodeError:
        raise BenchError("`clearance key create --json` did not print JSON") from None
    key = data.get("key") if isinstance(data, dict) else None
    if not isinstance(key, str):
        raise BenchError("`clearance key create --json` printed no key")
    return key


def start_clearance(name: str, workdir: Path, stub_port: int, cpus: set[int] | None, workers: int = 1) -> Running:
    policy, guard, audit = CLEARANCE_VARIANTS[name]
    state = workdir / name
    port = free_port()
    log = workdir / f"{name}.log"
    config = clearance_config(state, stub_port, port, policy, guard, audit, workers, CLEARANCE_SETTINGS.get(name))
    key = clearance_identity(config, log, CLEARANCE_SETUP.get(name))
    proc = _spawn([*_clearance_cli(), "serve", "--config", str(config)], log, cpus)
    run = Running(name, f"http://127.0.0.1:{port}{CHAT_PATH}", api_key=key, procs=[proc], log=log)
    run.notes.update({"policy": policy, "guard": guard, "audit": audit, "workers": workers})
    if not wait_ready(run, timeout=60):
        run.stop()
        raise BenchError(f"{name} did not answer:\n{run.notes.get('last_probe', '')}\n{log_tail(log)}")
    return run


# --- LiteLLM ------------------------------------------------------------------

def _venv(name: str, packages: tuple[str, ...], log: Path) -> Path:
    """A virtual environment under bench/.venvs/ with ``packages`` installed; created on first use."""
    root = BENCH / ".venvs" / name
    marker = root / "bench-installed.txt"
    wanted = "\n".join(packages)
    if marker.exists() and marker.read_text() == wanted:
        return root
    print(f"# installing {' '.join(packages)} into {root} (first use only)", file=sys.stderr)
    with log.open("ab") as out:
        if not (root / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, stdout=out, stderr=out)
        proc = subprocess.run([str(root / "bin" / "pip"), "install", "-q", *packages], stdout=out, stderr=out)
    if proc.returncode != 0:
        raise BenchError(f"pip could not install {' '.join(packages)}:\n{log_tail(log)}")
    marker.write_text(wanted)
    return root


def tools_python(log: Path) -> Path:
    """The Python of the bench tools venv (matplotlib, py-spy)."""
    return _venv("tools", TOOLS_PACKAGES, log) / "bin" / "python"


def start_litellm(workdir: Path, stub_port: int, cpus: set[int] | None) -> Running:
    log = workdir / "litellm.log"
    venv = _venv("litellm", (f"litellm[proxy]=={LITELLM_VERSION}",), log)
    port = free_port()
    cfg = {
        "model_list": [{"model_name": MODEL, "litellm_params": {
            "model": f"openai/{MODEL}", "api_base": f"http://127.0.0.1:{stub_port}/v1", "api_key": "sk-stub"}}],
        "litellm_settings": {"telemetry": False, "drop_params": True},
    }
    path = workdir / "litellm.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "LITELLM_OFFLINE_MODE": "true", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
           "LITELLM_LOG": "ERROR", "DISABLE_SCHEMA_UPDATE": "true"}
    env.pop("DATABASE_URL", None)
    proc = _spawn([str(venv / "bin" / "litellm"), "--config", str(path), "--host", "127.0.0.1", "--port", str(port),
                   "--num_workers", "1"], log, cpus, env=env)
    run = Running("litellm", f"http://127.0.0.1:{port}{CHAT_PATH}", procs=[proc], log=log)
    run.notes["version"] = LITELLM_VERSION
    if not wait_ready(run, timeout=120):
        run.stop()
        raise BenchError(f"litellm did not answer:\n{log_tail(log)}")
    return run


# --- Portkey ------------------------------------------------------------------

def _portkey_install(log: Path) -> Path:
    root = BENCH / ".node"
    entry = root / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    pkg = root / "node_modules" / "@portkey-ai" / "gateway" / "package.json"
    if pkg.exists() and json.loads(pkg.read_text()).get("version") == PORTKEY_VERSION:
        return entry
    root.mkdir(parents=True, exist_ok=True)
    (root / "package.json").write_text(json.dumps(
        {"private": True, "dependencies": {"@portkey-ai/gateway": PORTKEY_VERSION}}) + "\n")
    print(f"# installing @portkey-ai/gateway@{PORTKEY_VERSION} into {root} (first use only)", file=sys.stderr)
    with log.open("ab") as out:
        proc = subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=root, stdout=out, stderr=out)
    if proc.returncode != 0 or not entry.exists():
        raise BenchError(f"npm could not install @portkey-ai/gateway@{PORTKEY_VERSION}:\n{log_tail(log)}")
    return entry


def start_portkey(workdir: Path, stub_port: int, cpus: set[int] | None) -> Running:
    log = workdir / "portkey.log"
    entry = _portkey_install(log)
    port = free_port()
    env = {**os.environ, "NODE_ENV": "production"}
    proc = _spawn(["node", str(entry), f"--port={port}", "--headless"], log, cpus, env=env, cwd=entry.parent)
    headers = (("x-portkey-provider", "openai"), ("x-portkey-custom-host", f"http://127.0.0.1:{stub_port}/v1"))
    run = Running("portkey", f"http://127.0.0.1:{port}{CHAT_PATH}", headers=headers, procs=[proc], log=log)
    run.notes["version"] = PORTKEY_VERSION
    if not wait_ready(run, timeout=60):
        run.stop()
        raise BenchError(f"portkey did not answer:\n{log_tail(log)}")
    return run


def start_system(name: str, workdir: Path, stub: Running, cpus: set[int] | None, workers: int = 1) -> Running:
    """Start one of :data:`ALL_SYSTEMS` against the running stub."""
    port = int(stub.notes["port"])  # type: ignore[arg-type]
    if name == "direct":
        return Running("direct", stub.url, procs=[])
    if name in CLEARANCE_VARIANTS:
        return start_clearance(name, workdir, port, cpus, workers)
    if name == "litellm":
        return start_litellm(workdir, port, cpus)
    if name == "portkey":
        return start_portkey(workdir, port, cpus)
    raise BenchError(f"unknown system {name!r}; choose from {', '.join(ALL_SYSTEMS)}")

"""Benchmark: how soon a directive applied with the CLI is enforced by running gateways. Prints JSON.

Two topologies, each a real ``clearance serve`` in front of a SIMULATED
upstream on loopback:

* ``sqlite``: one gateway with two worker processes sharing a SQLite store;
* ``postgresql``: two gateway replicas (one worker each) sharing a PostgreSQL
  database (a temporary one, skipped when the server does not answer).

In each trial, probe threads keep sending chat completions as a non-US
person to a frontier model on fresh connections (so every worker and replica
answers), ``clearance directive apply`` suspends the frontier models for
non-US persons, and the probes run on until every one of them has seen a
denial for a while.  Times are measured from the instant the CLI returned:

* ``first_denial_s``: the start of the first denied request (negative when a
  worker swapped its snapshot before the CLI process had exited);
* ``all_denied_s``: the start of the last request that was still served,
  after which every request was denied (0 when none was served after it).

The same two are also given from the directive's ``issued_at`` (stamped by
the CLI just before its transaction commits): ``first_denial_after_issue_s``
and ``all_denied_after_issue_s``, i.e. the propagation delay proper (one
snapshot poll plus a recompile), without the CLI process's own exit time.

The directive is then revoked and the next trial waits until requests are
served again.  Medians over ``--trials``.

    python bench/directive_propagation.py [--trials 5] [--poll-seconds 0.25] [--no-pg] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import httpx
import yaml

from clearance.demo.run import start_in_thread
from clearance.demo.upstream import create_upstream_app

PG_ADMIN = os.environ.get("CLEARANCE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SUSPEND = ('forbid (principal, action, resource in Clearance::ModelFamily::"frontier")\n'
           "unless { principal.us_person };\n")
BASE = ('@id("everyone-frontier")\n@title("Everyone may use the frontier model")\n'
        'permit (principal, action, resource == Clearance::Model::"frontier-general");\n')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(config: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "clearance", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise SystemExit(f"clearance {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def write_world(folder: Path, db_url: str, upstream_url: str, poll: float | None) -> tuple[Path, str]:
    """A config with one frontier model on the simulated upstream, and a non-US persona's key."""
    (folder / "base.cedar").write_text(BASE)
    server = {"log_format": "json", "log_level": "WARNING"}
    if poll is not None:
        server["snapshot_poll_seconds"] = poll
    cfg = {"state_dir": str(folder / "state"), "database_url": db_url, "server": server,
           "backends": [{"name": "sim", "base_url": upstream_url + "/v1", "model": "sim-model"}],
           "models": [{"name": "frontier-general", "family": "frontier", "backends": ["sim"]}],
           "policy": {"files": ["base.cedar"]}, "guard": {"enabled": False}}
    config = folder / "clearance.yaml"
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    cli(config, "org", "add", "eu-lab")
    cli(config, "user", "add", "intl-researcher", "--org", "eu-lab", "--nationality", "DE", "--non-us-person",
        "--verified")
    key = json.loads(cli(config, "key", "create", "--user", "intl-researcher", "--json"))["key"]
    return config, key


@dataclass
class Gateway:
    url: str
    proc: subprocess.Popen

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_gateway(config: Path, workers: int) -> Gateway:
    port = free_port()
    log = open(config.parent / f"gateway-{port}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "clearance", "serve", "--config", str(config),
                             "--port", str(port), "--workers", str(workers)], stdout=log, stderr=subprocess.STDOUT)
    gw = Gateway(f"http://127.0.0.1:{port}", proc)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gateway exited with {proc.returncode}; see {log.name}")
        try:
            if httpx.get(gw.url + "/readyz", timeout=1).status_code == 200:
                return gw
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    gw.stop()
    raise SystemExit("gateway did not become ready")


@dataclass
class Probe:
    """Requests sent to one gateway until stopped: (start time, HTTP status) each."""

    url: str
    key: str
    results: list[tuple[float, int]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        body = {"model": "frontier-general", "messages": [{"role": "user", "content": "status?"}]}
        headers = {"authorization": f"Bearer {self.key}"}
        with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=30) as http:
            while not self.stop.is_set():
                t = time.time()
                try:
                    status = http.post(self.url + "/v1/chat/completions", json=body, headers=headers).status_code
                except httpx.HTTPError:
                    status = 0
                self.results.append((t, status))


def wait_for(gws: list[Gateway], key: str, status: int, timeout: float = 30.0) -> None:
    """Until every gateway answers ``status`` a few times in a row."""
    body = {"model": "frontier-general", "messages": [{"role": "user", "content": "status?"}]}
    deadline = time.monotonic() + timeout
    with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=30) as http:
        for gw in gws:
            streak = 0
            while streak < 6:
                if time.monotonic() > deadline:
                    raise SystemExit(f"gateway at {gw.url} did not settle on HTTP {status}")
                got = http.post(gw.url + "/v1/chat/completions", json=body,
                                headers={"authorization": f"Bearer {key}"}).status_code
                streak = streak + 1 if got == status else 0
                if got != status:
                    time.sleep(0.05)


def trial(config: Path, gws: list[Gateway], key: str, n: int, probes_per_gateway: int) -> dict:
    """Apply a directive under load; return the delays seen from the CLI's return."""
    wait_for(gws, key, 200)
    probes = [Probe(gw.url, key) for gw in gws for _ in range(probes_per_gateway)]
    threads = [threading.Thread(target=p.run, daemon=True) for p in probes]
    for t in threads:
        t.start()
    time.sleep(0.5)
    policy = config.parent / "suspend.cedar"
    policy.write_text(SUSPEND)
    t0 = time.time()
    cli(config, "directive", "apply", str(policy), "--id", f"BENCH-{n}", "--title", "Suspended for non-US persons")
    applied = time.time()
    # Run on until every probe has seen only denials for a second (or 10 s passed).
    deadline = applied + 10.0
    while time.time() < deadline:
        time.sleep(0.1)
        settled = all(p.results and any(s == 403 for _, s in p.results)
                      and all(s == 403 for t, s in p.results if t > time.time() - 1.0) for p in probes)
        if settled and time.time() > applied + 1.0:
            break
    for p in probes:
        p.stop.set()
    for t in threads:
        t.join(timeout=30)
    cli(config, "directive", "revoke", f"BENCH-{n}", "--reason", "trial over")
    listed = json.loads(cli(config, "directive", "list", "--json"))
    issued = next(datetime.fromisoformat(d["issued_at"].replace("Z", "+00:00")).timestamp()
                  for d in listed if d["id"] == f"BENCH-{n}")

    per_gateway = []
    for gw in gws:
        res = sorted(r for p in probes if p.url == gw.url for r in p.results)
        denied = [t for t, s in res if s == 403]
        served_after = [t for t, s in res if s == 200 and t >= t0]
        per_gateway.append({
            "first_denial_s": round(min(denied) - applied, 4) if denied else None,
            "all_denied_s": round(max([applied, *served_after]) - applied, 4),
            "first_denial_after_issue_s": round(min(denied) - issued, 4) if denied else None,
            "all_denied_after_issue_s": round(max([issued, *served_after]) - issued, 4),
            "requests": len(res),
            "other_statuses": sorted({s for _, s in res if s not in (200, 403)}),
        })
    firsts = [g["first_denial_s"] for g in per_gateway if g["first_denial_s"] is not None]
    issue_firsts = [g["first_denial_after_issue_s"] for g in per_gateway if g["first_denial_s"] is not None]
    return {
        "cli_seconds": round(applied - t0, 4),
        "first_denial_after_issue_s": min(issue_firsts) if issue_firsts else None,
        "all_denied_after_issue_s": max(g["all_denied_after_issue_s"] for g in per_gateway),
        "first_denial_s": min(firsts) if firsts else None,
        "all_denied_s": max(g["all_denied_s"] for g in per_gateway),
        "every_gateway_denied": len(firsts) == len(gws),
        "per_gateway": per_gateway,
    }


def summarise(values: list[float | None]) -> dict:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "values": values}
    return {"median": round(statistics.median(vals), 4), "min": min(vals), "max": max(vals), "values": values}


def run_topology(name: str, db_url: str, folder: Path, replicas: int, workers: int, trials: int,
                 poll: float | None, probes: int) -> dict:
    with ExitStack() as stack:
        upstream = start_in_thread(create_upstream_app("sim"), port := free_port())
        stack.callback(lambda: setattr(upstream, "should_exit", True))
        config, key = write_world(folder, db_url, f"http://127.0.0.1:{port}", poll)
        gws = []
        for _ in range(replicas):
            gw = start_gateway(config, workers)
            stack.callback(gw.stop)
            gws.append(gw)
        results = [trial(config, gws, key, i, probes) for i in range(trials)]
    return {
        "store": name, "replicas": replicas, "workers_per_replica": workers, "trials": trials,
        "first_denial_s": summarise([r["first_denial_s"] for r in results]),
        "all_denied_s": summarise([r["all_denied_s"] for r in results]),
        "first_denial_after_issue_s": summarise([r["first_denial_after_issue_s"] for r in results]),
        "all_denied_after_issue_s": summarise([r["all_denied_after_issue_s"] for r in results]),
        "cli_seconds": summarise([r["cli_seconds"] for r in results]),
        "every_gateway_denied": all(r["every_gateway_denied"] for r in results),
        "trial_details": results,
    }


def make_pg_database() -> str | None:
    import secrets

    try:
        import psycopg

        name = "clearance_bench_" + secrets.token_hex(6)
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as e:  # noqa: BLE001 - reported, the run goes on without PostgreSQL
        print(f"PostgreSQL skipped: {type(e).__name__}: {e}", file=sys.stderr)
        return None
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(url: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--poll-seconds", type=float, default=None,
                    help="server.snapshot_poll_seconds (default: the product's default)")
    ap.add_argument("--probes", type=int, default=2, help="probe threads per gateway process")
    ap.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()
    if args.trials < 1:
        ap.error("--trials must be at least 1")

    from clearance.config import ServerSettings

    poll = args.poll_seconds if args.poll_seconds is not None else ServerSettings().snapshot_poll_seconds
    runs = []
    with tempfile.TemporaryDirectory(prefix="clearance-propagation-") as tmp:
        folder = Path(tmp) / "sqlite"
        folder.mkdir()
        runs.append(run_topology("sqlite", f"sqlite:///{folder / 'clearance.db'}", folder, 1, 2, args.trials,
                                 args.poll_seconds, args.probes))
        url = None if args.no_pg else make_pg_database()
        if url:
            try:
                folder = Path(tmp) / "postgresql"
                folder.mkdir()
                runs.append(run_topology("postgresql", url, folder, 2, 1, args.trials, args.poll_seconds,
                                         args.probes))
            finally:
                drop_pg_database(url)
    out = {
        "benchmark": "directive_propagation",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "snapshot_poll_seconds": poll,
        "budget_s": 1.0,
        "note": "seconds from `clearance directive apply` returning; guard off; SIMULATED upstream on loopback",
        "runs": runs,
    }
    text = json.dumps(out, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()

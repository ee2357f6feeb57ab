"""Benchmark of the audit log: appends per second and full-verification time. Prints JSON.

Appends go through ``AuditLog.append`` from many concurrent asyncio tasks
(group commit), on SQLite (a temporary file) and on PostgreSQL (a temporary
database, skipped when unreachable).  The ``sequential`` scenario measures
the cost of one append as the gateway sees it at moderate load, where entries
arrive one at a time: one task awaits each append before the next (process
CPU, event-loop thread CPU and wall time per append), then 20 rounds of 50
appends gathered at once (batches of 50).  The ``verify`` scenario builds a
real log of ``--verify-entries`` entries (default one million) through
``AuditLog.append_batch_sync``, which encodes, hashes and commits each batch
exactly as the gateway's appends do (10,000 entries per transaction, a signed
checkpoint every 50,000), then times ``verify_log`` in process and
``clearance audit verify --config F`` as a fresh process.  A million-entry
SQLite log takes about 0.5 GB in the temporary folder.

    python bench/audit_append.py [--entries 20000] [--appenders 200] [--verify-entries 1000000]
                                 [--sequential 500] [--only sequential] [--no-pg]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from clearance.audit.checkpoint import CheckpointSigner
from clearance.audit.log import AuditLog
from clearance.audit.settings import AuditSettings
from clearance.audit.verify import verify_log
from clearance.store.db import make_engine, migrate
from clearance.types import AuditEntry

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
ORIGIN = "bench.example/audit"


def entry(i: int) -> AuditEntry:
    """A typical decision entry; entry ``i`` is logged ``i`` milliseconds after midnight."""
    s, ms = divmod(i, 1000)
    m, s = divmod(s, 60)
    h, m = divmod(m, 60)
    return AuditEntry(
        time=f"2025-01-01T{h:02d}:{m:02d}:{s:02d}.{ms:03d}000Z", request_id=f"req-{i:012d}", kind="decision", principal=f"user-{i % 97}",
        org=f"org-{i % 7}", model="gpt-4o", decision="allow" if i % 5 else "deny", backend="primary",
        reasons=["policy-default-allow"] if i % 5 else ["directive-2025-export"], snapshot="ab" * 32,
        guard={"jailbreak": 0.013, "cyber_offense": 0.002}, prompt_sha256="cd" * 32, completion_sha256="ef" * 32,
        prompt_tokens=120, completion_tokens=350, latency_ms=812.5, status=200,
    )


def bench_append(url: str, n: int, appenders: int) -> dict:
    engine = make_engine(url)
    migrate(engine)
    log = AuditLog(engine, AuditSettings(origin=ORIGIN), CheckpointSigner.generate(ORIGIN))

    async def worker(k: int) -> None:
        for i in range(k, n, appenders):
            await log.append(entry(i))

    async def run() -> float:
        log.start()
        t0 = time.perf_counter()
        await asyncio.gather(*[worker(k) for k in range(appenders)])
        elapsed = time.perf_counter() - t0
        await log.aclose()
        return elapsed

    elapsed = asyncio.run(run())
    engine.dispose()
    return {"entries": n, "appenders": appenders, "seconds": round(elapsed, 3), "appends_per_second": round(n / elapsed)}


def bench_sequential(url: str, n: int) -> dict:
    """Per-append cost with one appender awaiting each entry, and with batches of 50."""
    import uvloop

    engine = make_engine(url)
    migrate(engine)
    log = AuditLog(engine, AuditSettings(origin=ORIGIN, batch_max_latency_ms=0))

    def per_append(t0: tuple[float, float, float], count: int) -> dict:
        cpu, loop_cpu, wall = time.process_time() - t0[0], time.thread_time() - t0[1], time.perf_counter() - t0[2]
        return {"cpu_us": round(1e6 * cpu / count), "loop_thread_cpu_us": round(1e6 * loop_cpu / count),
                "wall_us": round(1e6 * wall / count)}

    async def run() -> dict:
        log.start()
        for i in range(50):  # warm up: connection, prepared statements
            await log.append(entry(i))
        t0 = (time.process_time(), time.thread_time(), time.perf_counter())
        for i in range(n):
            await log.append(entry(i))
        sequential = per_append(t0, n)
        t0 = (time.process_time(), time.thread_time(), time.perf_counter())
        for _ in range(20):
            await asyncio.gather(*[log.append(entry(i)) for i in range(50)])
        batched = per_append(t0, 1000)
        await log.aclose()
        return {"appends": n, "sequential": sequential, "batches_of_50": batched}

    out = uvloop.run(run())
    engine.dispose()
    return out


def build_log(url: str, n: int, batch: int = 10_000, checkpoint_every: int = 50_000):
    """A log of ``n`` entries written through ``AuditLog.append_batch_sync`` (the append path's
    encoding and commit, ``batch`` entries per transaction), signed checkpoints every
    ``checkpoint_every`` entries and at the end.  Returns (engine, signer, seconds)."""
    engine = make_engine(url)
    migrate(engine)
    signer = CheckpointSigner.generate(ORIGIN)
    log = AuditLog(engine, AuditSettings(origin=ORIGIN, checkpoint_interval_seconds=3600), signer)
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        end = min(n, start + batch)
        log.append_batch_sync([entry(i) for i in range(start, end)])
        if end % checkpoint_every == 0:
            log.checkpoint()
    log.checkpoint()
    return engine, signer, time.perf_counter() - t0


def time_cli_verify(url: str, signer: CheckpointSigner, folder: Path) -> float:
    """Wall time of ``clearance audit verify --config F`` in a fresh process (imports included)."""
    (folder / "bench.key.pub").write_text(signer.verifier.vkey() + "\n")
    cfg = folder / "bench.yaml"
    cfg.write_text(json.dumps({"state_dir": str(folder), "database_url": url,
                               "audit": {"origin": ORIGIN, "verifier_key": "bench.key.pub"}}))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "clearance", "audit", "verify", "--config", str(cfg)],
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0 or not proc.stdout.startswith("OK:"):
        raise SystemExit(f"`clearance audit verify` failed on the benchmark log:\n{proc.stdout}{proc.stderr}")
    return elapsed


def bench_verify(url: str, n: int) -> dict:
    engine, signer, build_seconds = build_log(url, n)
    t0 = time.perf_counter()
    result = verify_log(engine, signer.verifier, ORIGIN)
    elapsed = time.perf_counter() - t0
    engine.dispose()
    if not result.ok:
        raise SystemExit(f"benchmark log failed verification: {result.problems[0].message}")
    with tempfile.TemporaryDirectory() as d:
        cli_seconds = time_cli_verify(url, signer, Path(d))
    return {"entries": n, "checkpoints": result.checkpoints_checked, "build_seconds": round(build_seconds, 1),
            "verify_log_seconds": round(elapsed, 3), "cli_verify_seconds": round(cli_seconds, 3),
            "cli_verify_seconds_per_million": round(cli_seconds * 1_000_000 / n, 2)}


def pg_database():
    import psycopg

    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        return None, None
    name = f"clearance_bench_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    return admin, name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=20_000)
    ap.add_argument("--appenders", type=int, default=200)
    ap.add_argument("--verify-entries", type=int, default=1_000_000)
    ap.add_argument("--sequential", type=int, default=500, help="appends in the sequential scenario")
    ap.add_argument("--only", choices=["append", "sequential", "verify"], action="append",
                    help="run only these scenarios (repeatable)")
    ap.add_argument("--no-pg", action="store_true")
    args = ap.parse_args()
    only = set(args.only or ["append", "sequential", "verify"])
    scenarios = [(name, fn, fn_args) for name, fn, fn_args in (
        ("append", bench_append, (args.entries, args.appenders)),
        ("sequential", bench_sequential, (args.sequential,)),
        ("verify", bench_verify, (args.verify_entries,)),
    ) if name in only]
    out: dict = {"target_appends_per_second": 2000, "target_verify_seconds_per_million": 30}
    with tempfile.TemporaryDirectory() as d:
        for name, fn, fn_args in scenarios:
            out[f"sqlite_{name}"] = fn(f"sqlite:///{Path(d) / (name + '.db')}", *fn_args)
    if not args.no_pg:
        for name, fn, fn_args in scenarios:
            key = f"postgresql_{name}"
            admin, db = pg_database()
            if admin is None:
                out[key] = "skipped: PostgreSQL not reachable"
                continue
            try:
                out[key] = fn(f"postgresql://postgres@127.0.0.1:5432/{db}", *fn_args)
            finally:
                admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
                admin.close()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

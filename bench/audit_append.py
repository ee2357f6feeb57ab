"""Benchmark of the audit log: appends per second and full-verification time. Prints JSON.

Appends go through ``AuditLog.append`` from many concurrent asyncio tasks
(group commit), on SQLite (a temporary file) and on PostgreSQL (a temporary
database, skipped when unreachable).  Verification times ``verify_log`` on
a log of ``--verify-entries`` entries and extrapolates linearly to one
million.

    python bench/audit_append.py [--entries 20000] [--appenders 200] [--verify-entries 200000] [--no-pg]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from pathlib import Path

from clearance.audit.checkpoint import CheckpointSigner
from clearance.audit.log import AuditLog, _Item, canonical_json, entry_leaf_hash
from clearance.audit.settings import AuditSettings
from clearance.audit.verify import verify_log
from clearance.store.db import make_engine, migrate
from clearance.types import AuditEntry

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
ORIGIN = "bench.example/audit"


def entry(i: int) -> AuditEntry:
    return AuditEntry(
        time="2025-01-01T00:00:00.000000Z", request_id=f"req-{i:012d}", kind="decision", principal=f"user-{i % 97}",
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


def bench_verify(url: str, n: int) -> dict:
    engine = make_engine(url)
    migrate(engine)
    signer = CheckpointSigner.generate(ORIGIN)
    log = AuditLog(engine, AuditSettings(origin=ORIGIN, checkpoint_interval_seconds=3600), signer)
    body = canonical_json(entry(0))
    with engine.connect() as conn:
        for start in range(0, n, 10_000):
            items = [_Item(body.replace("req-000000000000", f"req-{i:012d}"), b"", lambda i, e: None)
                     for i in range(start, min(n, start + 10_000))]
            for it in items:
                it.leaf = entry_leaf_hash(it.body)
            log._commit(conn, items)
            if (start // 10_000) % 5 == 4:
                log._checkpoint(conn)
    log.checkpoint()
    t0 = time.perf_counter()
    result = verify_log(engine, signer.verifier, ORIGIN)
    elapsed = time.perf_counter() - t0
    engine.dispose()
    if not result.ok:
        raise SystemExit(f"benchmark log failed verification: {result.problems[0].message}")
    return {"entries": n, "checkpoints": result.checkpoints_checked, "seconds": round(elapsed, 3),
            "extrapolated_seconds_per_million": round(elapsed * 1_000_000 / n, 2)}


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
    ap.add_argument("--verify-entries", type=int, default=200_000)
    ap.add_argument("--no-pg", action="store_true")
    args = ap.parse_args()
    out: dict = {"target_appends_per_second": 2000, "target_verify_seconds_per_million": 30}
    with tempfile.TemporaryDirectory() as d:
        out["sqlite_append"] = bench_append(f"sqlite:///{Path(d) / 'append.db'}", args.entries, args.appenders)
        out["sqlite_verify"] = bench_verify(f"sqlite:///{Path(d) / 'verify.db'}", args.verify_entries)
    if not args.no_pg:
        for key, fn, fn_args in (("postgresql_append", bench_append, (args.entries, args.appenders)),
                                 ("postgresql_verify", bench_verify, (args.verify_entries,))):
            admin, name = pg_database()
            if admin is None:
                out[key] = "skipped: PostgreSQL not reachable"
                continue
            try:
                out[key] = fn(f"postgresql://postgres@127.0.0.1:5432/{name}", *fn_args)
            finally:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                admin.close()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

"""Two gateway replicas append into one audit log on PostgreSQL, concurrently.

Each replica has its own ``AuditLog`` (its own engine, writer thread and
periodic checkpoints).  Afterwards the log must hold one total order with no
gaps, every checkpoint must be consistent with every other, and the whole
log must verify.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from tests.conftest import pg_database
from sqlalchemy import text

from clearance.audit.checkpoint import CheckpointSigner, parse_checkpoint
from clearance.audit.export import load_tree
from clearance.audit.log import AuditLog
from clearance.audit.merkle import consistency_proof, verify_consistency
from clearance.audit.settings import AuditSettings
from clearance.audit.verify import load_checkpoints, verify_log
from clearance.store.db import make_engine, migrate
from clearance.types import AuditEntry

ORIGIN = "replicas.example/audit"


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from pg_database()


def _entry(replica: str, i: int) -> AuditEntry:
    return AuditEntry(time="2025-01-01T00:00:00Z", request_id=f"{replica}-{i}", kind="decision",
                      principal="u", org="o", model="m", decision="allow")


def test_two_replicas_share_one_consistent_log(pg_url: str) -> None:
    signer = CheckpointSigner.generate(ORIGIN)
    engines = [make_engine(pg_url) for _ in range(2)]
    migrate(engines[0])
    settings = AuditSettings(origin=ORIGIN, checkpoint_interval_seconds=0.02, batch_max_size=50)
    logs = [AuditLog(e, settings, signer) for e in engines]
    per_replica = 400
    results: dict[str, list[int]] = {}

    def replica(name: str, log: AuditLog) -> None:
        async def run() -> list[int]:
            out: list[int] = []
            for start in range(0, per_replica, 100):
                out += await asyncio.gather(*[log.append(_entry(name, i)) for i in range(start, start + 100)])
                log.checkpoint()
            await log.aclose()
            return out

        results[name] = asyncio.run(run())

    threads = [threading.Thread(target=replica, args=(f"r{k}", log)) for k, log in enumerate(logs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    all_indices = sorted(results["r0"] + results["r1"])
    assert all_indices == list(range(2 * per_replica))
    with engines[0].connect() as conn:
        ids = dict(conn.execute(text("SELECT idx, body FROM audit_entries")).all())
    for name, indices in results.items():
        for i, idx in enumerate(indices):
            assert f'"request_id":"{name}-{i}"' in ids[idx]

    checkpoints = [parse_checkpoint(signer.verifier.verify(c.note)) for c in load_checkpoints(engines[0])]
    assert len(checkpoints) >= 2
    assert checkpoints[-1].size == 2 * per_replica
    tree = load_tree(engines[0], 2 * per_replica)
    newest = checkpoints[-1]
    for cp in checkpoints:
        assert cp.root == tree.subtree(0, cp.size)
        if cp.size:
            verify_consistency(cp.size, newest.size, consistency_proof(cp.size, newest.size, tree), cp.root, newest.root)
    result = verify_log(engines[0], signer.verifier, ORIGIN)
    assert result.ok, result.problems
    for e in engines:
        e.dispose()

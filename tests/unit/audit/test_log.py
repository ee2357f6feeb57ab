"""AuditLog: group commit, indices, checkpoints and the stored tree, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from sqlalchemy import select

from clearance.audit.checkpoint import CheckpointSigner, parse_checkpoint
from clearance.audit.log import AuditError, AuditLog, canonical_json
from clearance.audit.merkle import leaf_hash, root_hash
from clearance.audit.settings import AuditSettings
from clearance.audit.tables import AuditEntryRow
from clearance.audit.verify import verify_log
from clearance.types import AuditEntry

ORIGIN = "test.example/audit"


def _stored(engine) -> list[tuple[int, str, bytes]]:
    t = AuditEntryRow.__table__
    with engine.connect() as conn:
        return [(r.idx, r.body, bytes(r.leaf_hash)) for r in conn.execute(select(t).order_by(t.c.idx))]


def test_canonical_json_is_sorted_compact_utf8(entry) -> None:
    e = entry(1)
    e.principal = "zoë"
    body = canonical_json(e)
    assert " " not in body.replace("zoë", "")
    assert "zoë" in body
    keys = list(json.loads(body))
    assert keys == sorted(keys)
    e.guard = {"x": float("nan")}
    with pytest.raises(AuditError):
        canonical_json(e)


def test_concurrent_appends_get_contiguous_indices_and_match_the_tree(engine, entry) -> None:
    signer = CheckpointSigner.generate(ORIGIN)
    log = AuditLog(engine, AuditSettings(origin=ORIGIN, batch_max_size=64), signer)

    async def run() -> list[int]:
        out = await asyncio.gather(*[log.append(entry(i)) for i in range(300)])
        await log.aclose()
        return out

    indices = asyncio.run(run())
    assert sorted(indices) == list(range(300))
    rows = _stored(engine)
    assert [r[0] for r in rows] == list(range(300))
    # Each caller got the index of its own entry.
    by_index = {r[0]: json.loads(r[1])["request_id"] for r in rows}
    for i, idx in enumerate(indices):
        assert by_index[idx] == f"req-{i}"
    assert all(leaf_hash(body.encode()) == h for _, body, h in rows)
    # Closing writes a final checkpoint covering everything.
    cp = parse_checkpoint(signer.verifier.verify(log.latest_checkpoint()))
    assert cp.size == 300
    assert cp.root == root_hash([h for _, _, h in rows])
    assert verify_log(engine, signer.verifier, ORIGIN).ok


def test_append_sync_without_and_with_the_writer(engine, entry) -> None:
    log = AuditLog(engine, AuditSettings(origin=ORIGIN))
    assert log.append_sync(entry(0)) == 0
    assert log.append_sync(entry(1)) == 1
    log.start()
    assert log.append_sync(entry(2)) == 2
    log.close()
    assert log.size() == 3
    with pytest.raises(AuditError):
        log.append_sync(entry(3))


def test_checkpoint_only_when_the_tree_grew(engine, entry) -> None:
    signer = CheckpointSigner.generate(ORIGIN)
    log = AuditLog(engine, AuditSettings(origin=ORIGIN), signer)
    first = log.checkpoint()
    assert parse_checkpoint(signer.verifier.verify(first)).size == 0
    assert log.checkpoint() == first
    log.append_sync(entry(0))
    second = log.checkpoint()
    assert second != first and parse_checkpoint(signer.verifier.verify(second)).size == 1


def test_unsigned_checkpoints_without_a_key(engine, entry) -> None:
    log = AuditLog(engine, AuditSettings(origin=ORIGIN))
    log.append_sync(entry(0))
    note = log.checkpoint()
    assert parse_checkpoint(note).size == 1


def test_periodic_checkpoints(engine, entry) -> None:
    signer = CheckpointSigner.generate(ORIGIN)
    log = AuditLog(engine, AuditSettings(origin=ORIGIN, checkpoint_interval_seconds=0.05), signer)
    log.append_sync(entry(0))
    log.start()
    log.append_sync(entry(1))
    deadline = time.monotonic() + 10
    size = 0
    while time.monotonic() < deadline and size < 2:
        note = log.latest_checkpoint()
        size = parse_checkpoint(signer.verifier.verify(note)).size if note else 0
        time.sleep(0.02)
    log.close()
    assert size == 2


def test_disabled_log_records_nothing(engine, entry) -> None:
    log = AuditLog(engine, AuditSettings(enabled=False))
    assert log.append_sync(entry(0)) == -1
    assert asyncio.run(log.append(entry(1))) == -1
    assert log.size() == 0


def test_a_failing_store_fails_the_append(tmp_path, entry) -> None:
    from clearance.store.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'unmigrated.db'}")
    log = AuditLog(engine, AuditSettings())

    async def run() -> None:
        try:
            await log.append(entry(0))
        finally:
            await log.aclose()

    with pytest.raises(AuditError):
        asyncio.run(run())


def test_entries_round_trip(engine) -> None:
    e = AuditEntry(time="t", request_id="r", kind="decision", principal="p", org="o", model="m", decision="deny",
                   reasons=["forbid-export"])
    log = AuditLog(engine, AuditSettings())
    log.append_sync(e)
    body = _stored(engine)[0][1]
    assert AuditEntry(**json.loads(body)) == e

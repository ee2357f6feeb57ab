"""Retention: pruning old entries keeps the log verifiable and the rest provable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from clearance.audit.checkpoint import CheckpointSigner
from clearance.audit.export import load_tree, prove
from clearance.audit.log import AuditLog
from clearance.audit.retention import RetentionError, prune
from clearance.audit.settings import AuditSettings
from clearance.audit.verify import verify_log

ORIGIN = "test.example/audit"


def _log(engine, entry, n: int, every: int):
    signer = CheckpointSigner.generate(ORIGIN)
    log = AuditLog(engine, AuditSettings(origin=ORIGIN), signer)
    for i in range(n):
        log.append_sync(entry(i))
        if (i + 1) % every == 0:
            log.checkpoint()
    return log, signer


def _age(engine, below: int) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_entries SET logged_at = :t WHERE idx < :n"),
                     {"t": datetime(2020, 1, 1, tzinfo=UTC), "n": below})


def test_prune_at_a_checkpoint_keeps_everything_verifiable(engine, entry) -> None:
    log, signer = _log(engine, entry, 30, 7)
    _age(engine, 17)  # entries 0..16 are old; the newest checkpoint inside them is at 14
    assert prune(engine, datetime.now(UTC) - timedelta(days=1)) == 14
    with engine.connect() as conn:
        assert conn.execute(text("SELECT min(idx) FROM audit_entries")).scalar() == 14
    result = verify_log(engine, signer.verifier, ORIGIN)
    assert result.ok, result.problems
    assert result.pruned_size == 14 and result.entries_checked == 16
    log.checkpoint()
    for i in (14, 20, 29):
        assert prove(engine, i, signer.verifier)["index"] == i
    assert load_tree(engine, 30).size == 30
    # Nothing more is old enough: a second prune is a no-op.
    assert prune(engine, datetime.now(UTC) - timedelta(days=1)) == 0


def test_prune_refuses_a_tampered_prefix(engine, entry) -> None:
    _log(engine, entry, 20, 10)
    _age(engine, 20)
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_entries SET body = body || ' ' WHERE idx = 3"))
    with pytest.raises(RetentionError):
        prune(engine, datetime.now(UTC))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_entries")).scalar() == 20


def test_tampering_after_a_prune_is_still_caught(engine, entry) -> None:
    _, signer = _log(engine, entry, 30, 10)
    _age(engine, 12)
    assert prune(engine, datetime.now(UTC) - timedelta(days=1)) == 10
    assert verify_log(engine, signer.verifier, ORIGIN).ok
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_head SET pruned_frontier = :f"), {"f": b"\x05" * 64})
    assert not verify_log(engine, signer.verifier, ORIGIN).ok

"""The commit path of AuditLog: several writers on one store, several event loops, lost connections."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from clearance.audit.checkpoint import CheckpointSigner, parse_checkpoint
from clearance.audit.log import AuditError, AuditLog
from clearance.audit.merkle import root_hash
from clearance.audit.settings import AuditSettings
from clearance.audit.tables import AuditEntryRow
from clearance.audit.verify import verify_log
from clearance.store.db import make_engine

ORIGIN = "test.example/audit"
_entries = AuditEntryRow.__table__


def test_two_logs_taking_turns_on_one_store_keep_one_order(engine, entry) -> None:
    """Each log's remembered head goes stale whenever the other one commits."""
    signer = CheckpointSigner.generate(ORIGIN)
    other_engine = make_engine(engine.url.render_as_string(hide_password=False))
    a = AuditLog(engine, AuditSettings(origin=ORIGIN), signer)
    b = AuditLog(other_engine, AuditSettings(origin=ORIGIN), signer)
    a.start()
    b.start()
    got = []
    for i in range(0, 60, 2):
        got.append(a.append_sync(entry(i)))
        got.append(a.append_sync(entry(i + 1)) if i % 6 else b.append_sync(entry(i + 1)))
        if i % 4 == 0:
            got.append(b.append_sync(entry(1000 + i)))
    a.close()
    b.close()
    other_engine.dispose()
    assert got == list(range(len(got)))
    with engine.connect() as conn:
        leaves = [bytes(h) for h in conn.execute(select(_entries.c.leaf_hash).order_by(_entries.c.idx)).scalars()]
    cp = parse_checkpoint(signer.verifier.verify(a.latest_checkpoint()))
    assert cp.size == len(got)
    assert cp.root == root_hash(leaves)
    assert verify_log(engine, signer.verifier, ORIGIN).ok


def test_appends_from_several_event_loops_share_one_writer(engine, entry) -> None:
    log = AuditLog(engine, AuditSettings(origin=ORIGIN, batch_max_size=16))
    log.start()
    results: dict[int, list[int]] = {}

    def loop_thread(k: int) -> None:
        async def run() -> list[int]:
            return await asyncio.gather(*[log.append(entry(k * 1000 + i)) for i in range(100)])

        results[k] = asyncio.run(run())

    threads = [threading.Thread(target=loop_thread, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    assert sorted(results[0] + results[1] + results[2]) == list(range(300))
    with engine.connect() as conn:
        request_ids = dict(conn.execute(select(_entries.c.idx, _entries.c.body)).all())
    for k, indices in results.items():
        for i, idx in enumerate(indices):
            assert f'"request_id":"req-{k * 1000 + i}"' in request_ids[idx]


def test_logged_at_can_be_queried_by_time(engine, entry) -> None:
    log = AuditLog(engine, AuditSettings())
    before = datetime.now(UTC) - timedelta(seconds=5)
    for i in range(3):
        log.append_sync(entry(i))
    after = datetime.now(UTC) + timedelta(seconds=5)
    with engine.connect() as conn:
        n_in = conn.execute(select(func.count()).where(_entries.c.logged_at >= before,
                                                       _entries.c.logged_at < after)).scalar_one()
        n_later = conn.execute(select(func.count()).where(_entries.c.logged_at >= after)).scalar_one()
    assert (n_in, n_later) == (3, 0)


def test_append_sync_on_a_failing_store_raises_audit_error(tmp_path, entry) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'unmigrated.db'}")
    log = AuditLog(engine, AuditSettings())
    with pytest.raises(AuditError):
        log.append_sync(entry(0))
    log.start()
    with pytest.raises(AuditError):
        log.append_sync(entry(1))
    log.close()


def test_a_lost_connection_fails_its_batch_and_the_writer_reconnects(engine, entry) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("needs a server that can drop the writer's connection")
    log = AuditLog(engine, AuditSettings())

    async def run() -> tuple[int, BaseException | None, int]:
        first = await log.append(entry(0))
        admin = make_engine(engine.url.render_as_string(hide_password=False))
        with admin.connect() as conn:
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        admin.dispose()
        try:
            await log.append(entry(1))
            lost = None
        except AuditError as e:
            lost = e
        third = await log.append(entry(2))
        await log.aclose()
        return first, lost, third

    first, lost, third = asyncio.run(run())
    assert isinstance(lost, AuditError)
    assert (first, third) == (0, 1)
    assert log.size() == 2
    assert verify_log(engine, None, "clearance.local/audit").ok


@pytest.mark.parametrize("level,pragma", [("full", 2), ("normal", 1)])
def test_sqlite_writer_commits_at_the_configured_synchronous_level(tmp_path, entry, level, pragma) -> None:
    from clearance.store.db import migrate

    engine = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    migrate(engine)
    log = AuditLog(engine, AuditSettings(origin=ORIGIN, sqlite_synchronous=level))
    raw = log._connect()
    try:
        assert raw.driver_connection.execute("PRAGMA synchronous").fetchone()[0] == pragma
    finally:
        log._release(raw)
    log.start()
    assert [log.append_sync(entry(i)) for i in range(5)] == list(range(5))
    log.close()  # the final checkpoint is written at synchronous=FULL whatever the level
    assert verify_log(engine, None, ORIGIN).ok
    engine.dispose()


def test_unknown_synchronous_level_is_refused() -> None:
    with pytest.raises(ValueError):
        AuditSettings(sqlite_synchronous="off")

"""SQLite commits on the event loop (``clearance.audit.loop_commit``): flushed before release, never blocking the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select

from clearance.audit import loop_commit
from clearance.audit.log import AuditError, AuditLog
from clearance.audit.settings import AuditSettings
from clearance.audit.tables import AuditEntryRow
from clearance.audit.verify import verify_log
from clearance.store.db import make_engine, migrate
from tests.unit.audit.conftest import count_batches

ORIGIN = "test.example/audit"
_entries = AuditEntryRow.__table__


@pytest.fixture
def sqlite_path(tmp_path) -> str:
    return str(tmp_path / "audit.db")


@pytest.fixture
def engine(sqlite_path: str) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{sqlite_path}")
    migrate(eng)
    yield eng
    eng.dispose()


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(_entries)).scalar_one()


def _writer_batches(log: AuditLog) -> list[int]:
    """Sizes of the batches the writer thread commits (the loop's commits do not pass here)."""
    sizes: list[int] = []
    commit = log._commit_and_resolve

    def counted(raw, batch):
        sizes.append(len(batch))
        return commit(raw, batch)

    log._commit_and_resolve = counted  # type: ignore[method-assign]
    return sizes


class _HeldFlush:
    """Stands in for ``os.fdatasync`` in the flush thread: records calls and returns only when released."""

    def __init__(self, fail: OSError | None = None) -> None:
        self.calls = 0
        self.release = threading.Event()
        self.fail = fail

    def __call__(self, fd: int) -> None:
        self.calls += 1
        self.release.wait(10)
        if self.fail is not None:
            raise self.fail


def test_entries_submitted_on_a_loop_are_committed_there_and_released_after_the_flush(
    engine, entry, monkeypatch
) -> None:
    flush = _HeldFlush()
    monkeypatch.setattr(loop_commit.os, "fdatasync", flush)
    log = AuditLog(engine, AuditSettings(origin=ORIGIN))
    writer = _writer_batches(log)

    async def run() -> list[int]:
        futs = [log.submit(entry(i)) for i in range(3)]
        for _ in range(50):
            if _count(engine) == 3:
                break
            await asyncio.sleep(0.01)
        # Committed (visible to another connection) but not flushed: nobody is released yet.
        assert _count(engine) == 3 and flush.calls >= 1
        assert not any(f.done() for f in futs)
        flush.release.set()
        return list(await asyncio.gather(*futs))

    assert asyncio.run(run()) == [0, 1, 2]
    assert writer == []  # the writer thread committed nothing
    log.close()
    assert verify_log(engine, None, ORIGIN).ok


def test_with_synchronous_normal_nothing_waits_for_a_flush(engine, entry, monkeypatch) -> None:
    flush = _HeldFlush()
    monkeypatch.setattr(loop_commit.os, "fdatasync", flush)
    log = AuditLog(engine, AuditSettings(origin=ORIGIN, sqlite_synchronous="normal"))

    async def run() -> list[int]:
        return [await log.append(entry(i)) for i in range(3)]

    assert asyncio.run(run()) == [0, 1, 2]
    assert flush.calls == 0
    log.close()


def test_a_flush_that_fails_fails_its_entries(engine, entry, monkeypatch) -> None:
    flush = _HeldFlush(fail=OSError(5, "Input/output error"))
    flush.release.set()
    monkeypatch.setattr(loop_commit.os, "fdatasync", flush)
    log = AuditLog(engine, AuditSettings(origin=ORIGIN))

    async def run() -> None:
        with pytest.raises(AuditError):
            await log.append(entry(1))

    asyncio.run(run())
    log.close()


def test_a_locked_database_does_not_block_the_loop_and_the_batch_follows_the_lock(
    engine, entry, sqlite_path
) -> None:
    log = AuditLog(engine, AuditSettings(origin=ORIGIN))
    other = sqlite3.connect(sqlite_path, isolation_level=None)

    async def run() -> int:
        await log.append(entry(0))  # the committer and its connection exist
        other.execute("BEGIN IMMEDIATE")  # another process takes the write lock
        fut = log.submit(entry(1))
        ticks = 0
        for _ in range(20):  # the loop keeps turning while the batch waits for the lock
            await asyncio.sleep(0.005)
            ticks += 1
        assert ticks == 20 and not fut.done()
        other.execute("COMMIT")
        return await asyncio.wait_for(fut, 10)

    assert asyncio.run(run()) == 1
    other.close()
    log.close()
    assert _count(engine) == 2 and verify_log(engine, None, ORIGIN).ok


def test_a_lock_held_too_long_fails_the_batch_and_the_log_recovers(
    engine, entry, sqlite_path, monkeypatch
) -> None:
    monkeypatch.setattr(loop_commit, "BUSY_GIVE_UP_S", 0.05)
    log = AuditLog(engine, AuditSettings(origin=ORIGIN))
    other = sqlite3.connect(sqlite_path, isolation_level=None)

    async def run() -> int:
        await log.append(entry(0))
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(AuditError):
            await asyncio.wait_for(log.append(entry(1)), 10)
        other.execute("COMMIT")
        return await log.append(entry(2))

    assert asyncio.run(run()) == 1  # the failed entry took no index
    other.close()
    log.close()
    assert _count(engine) == 2 and verify_log(engine, None, ORIGIN).ok


def test_the_writer_checkpoints_the_wal_every_so_many_loop_commits(engine, entry, monkeypatch) -> None:
    monkeypatch.setattr(loop_commit, "WAL_CHECKPOINT_EVERY", 5)
    log = AuditLog(engine, AuditSettings(origin=ORIGIN))
    calls: list[int] = []
    checkpoint = log._wal_checkpoint

    def counted(raw):
        calls.append(1)
        return checkpoint(raw)

    log._wal_checkpoint = counted  # type: ignore[method-assign]

    async def run() -> None:
        for i in range(12):
            await log.append(entry(i))  # one batch each
        deadline = time.monotonic() + 10
        while len(calls) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    asyncio.run(run())
    assert len(calls) == 2
    log.close()


def test_aclose_commits_what_is_set_aside_and_waits_for_its_flush(engine, entry, monkeypatch) -> None:
    flush = _HeldFlush()
    flush.release.set()
    monkeypatch.setattr(loop_commit.os, "fdatasync", flush)
    log = AuditLog(engine, AuditSettings(origin=ORIGIN, completion_max_delay_ms=10_000))

    async def run() -> None:
        await log.append(entry(0))
        calls = flush.calls
        for i in range(1, 4):
            log.append_later(entry(i))
        await log.aclose()
        assert flush.calls > calls  # the last batch was flushed before aclose returned

    asyncio.run(run())
    assert _count(engine) == 4 and verify_log(engine, None, ORIGIN).ok


def test_a_new_event_loop_gets_a_committer_of_its_own(engine, entry) -> None:
    log = AuditLog(engine, AuditSettings(origin=ORIGIN))
    writer = _writer_batches(log)

    async def run(i: int) -> int:
        return await log.append(entry(i))

    assert [asyncio.run(run(i)) for i in range(3)] == [0, 1, 2]
    assert writer == []
    log.close()


def test_a_second_running_loop_uses_the_writer_thread(engine, entry) -> None:
    log = AuditLog(engine, AuditSettings(origin=ORIGIN))
    writer = _writer_batches(log)
    result: list[int] = []

    async def main() -> None:
        await log.append(entry(0))  # this loop's committer
        other = threading.Thread(target=lambda: result.append(asyncio.run(log.append(entry(1)))))
        other.start()
        while other.is_alive():
            await asyncio.sleep(0.01)

    asyncio.run(main())
    assert result == [1] and writer == [1]
    log.close()
    assert verify_log(engine, None, ORIGIN).ok


def test_writer_thread_setting_keeps_every_commit_on_the_writer(engine, entry) -> None:
    log = AuditLog(engine, AuditSettings(origin=ORIGIN, sqlite_commit_on="writer_thread"))
    writer = _writer_batches(log)

    async def run() -> list[int]:
        return [await log.append(entry(i)) for i in range(2)]

    assert asyncio.run(run()) == [0, 1]
    assert writer == [1, 1]
    log.close()


def test_entries_that_come_during_a_flush_are_committed_together_when_it_returns(engine, entry, monkeypatch) -> None:
    flush = _HeldFlush()
    monkeypatch.setattr(loop_commit.os, "fdatasync", flush)
    log = AuditLog(engine, AuditSettings(origin=ORIGIN))
    sizes = count_batches(log)

    async def run() -> list[int]:
        first = log.submit(entry(0))
        while flush.calls == 0:  # committed, and its flush is under way (held)
            await asyncio.sleep(0.005)
        later = [log.submit(entry(i)) for i in (1, 2)]
        for _ in range(10):
            await asyncio.sleep(0.005)
        assert sizes == [1] and _count(engine) == 1  # held until the flush returns
        flush.release.set()
        return list(await asyncio.gather(first, *later))

    assert asyncio.run(run()) == [0, 1, 2]
    assert sizes == [1, 2] and flush.calls == 2
    log.close()
    assert verify_log(engine, None, ORIGIN).ok


def test_close_hands_what_the_loop_has_not_committed_to_the_writer(engine, entry) -> None:
    log = AuditLog(engine, AuditSettings(origin=ORIGIN))
    writer = _writer_batches(log)

    async def run() -> int:
        fut = log.submit(entry(0))  # its commit is due at the end of this turn of the loop
        log.close()  # before that turn ends
        assert _count(engine) == 1
        return await asyncio.wait_for(fut, 10)

    assert asyncio.run(run()) == 0
    assert writer == [1]
    assert verify_log(engine, None, ORIGIN).ok

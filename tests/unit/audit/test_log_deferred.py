"""Entries nobody waits for (``AuditLog.append_later``): committed with the next waited-for batch, or after a bound."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import func, select

from clearance.audit.log import AuditError, AuditLog
from clearance.audit.settings import AuditSettings
from clearance.audit.tables import AuditEntryRow
from clearance.audit.verify import verify_log
from tests.unit.audit.conftest import count_batches

ORIGIN = "test.example/audit"
_entries = AuditEntryRow.__table__


def _count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(_entries)).scalar_one()


def test_a_deferred_entry_rides_with_the_next_waited_for_entry(engine, entry) -> None:
    # A bound far longer than the test: only the waited-for entry can release the deferred one.
    log = AuditLog(engine, AuditSettings(origin=ORIGIN, completion_max_delay_ms=10_000))
    sizes = count_batches(log)

    async def run() -> int:
        log.append_later(entry(1))
        await asyncio.sleep(0.2)  # the writer holds it
        assert sizes == [] and _count(engine) == 0
        return await log.append(entry(2))

    assert asyncio.run(run()) == 1  # committed after the deferred entry, in the same transaction
    assert sizes == [2]
    log.close()
    assert verify_log(engine, None, ORIGIN).ok


def test_a_deferred_entry_alone_is_committed_after_the_bound(engine, entry) -> None:
    log = AuditLog(engine, AuditSettings(origin=ORIGIN, completion_max_delay_ms=50))
    sizes = count_batches(log)

    async def run() -> None:
        log.append_later(entry(1))  # nothing else comes: the loop's timer wakes the writer
        deadline = time.monotonic() + 10
        while _count(engine) == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    asyncio.run(run())
    assert _count(engine) == 1 and sizes == [1]
    log.close()


def test_without_an_event_loop_a_deferred_entry_wakes_the_writer_at_once(engine, entry) -> None:
    log = AuditLog(engine, AuditSettings(origin=ORIGIN, completion_max_delay_ms=10_000))
    log.append_later(entry(1))
    deadline = time.monotonic() + 10
    while _count(engine) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _count(engine) == 1
    log.close()


def test_close_commits_held_deferred_entries(engine, entry) -> None:
    log = AuditLog(engine, AuditSettings(origin=ORIGIN, completion_max_delay_ms=10_000))

    async def run() -> None:
        for i in range(5):
            log.append_later(entry(i))
        await asyncio.sleep(0.1)
        assert _count(engine) == 0  # held: nobody waited, and the bound is far away

    asyncio.run(run())
    log.close()
    assert _count(engine) == 5
    assert verify_log(engine, None, ORIGIN).ok


def test_submit_queues_at_once_and_its_future_gives_the_index(engine, entry) -> None:
    log = AuditLog(engine, AuditSettings(origin=ORIGIN))

    async def run() -> list[int]:
        futs = [log.submit(entry(i)) for i in range(3)]  # queued before anything is awaited
        assert all(not f.done() for f in futs) or _count(engine) > 0
        return list(await asyncio.gather(*futs))

    assert asyncio.run(run()) == [0, 1, 2]
    log.close()
    assert _count(engine) == 3


def test_disabled_log_takes_deferred_and_submitted_entries_and_keeps_nothing(engine, entry) -> None:
    log = AuditLog(engine, AuditSettings(origin=ORIGIN, enabled=False))

    async def run() -> int:
        log.append_later(entry(1))
        return await log.submit(entry(2))

    assert asyncio.run(run()) == -1
    log.close()
    assert _count(engine) == 0


def test_a_closed_log_refuses_deferred_entries(engine, entry) -> None:
    log = AuditLog(engine, AuditSettings(origin=ORIGIN))
    log.start()
    log.close()
    try:
        log.append_later(entry(1))
    except AuditError:
        pass
    else:
        raise AssertionError("a closed log took an entry")

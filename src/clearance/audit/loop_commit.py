"""SQLite audit commits on the event loop, with the disk flush on a thread of its own.

On SQLite a commit's statements take tens of microseconds; what takes long is
the disk flush (``fdatasync``) that makes it survive a power loss.  Handing
every batch to a writer thread costs several thread switches and GIL hand-overs
per request on a gateway that has one core, more than the statements do.  So,
for entries submitted on the gateway's event loop, :class:`LoopCommitter`:

1. gathers what was submitted during one turn of the loop (and the completion
   entries set aside by ``append_later``) and commits it as one batch, on the
   loop, through a connection of its own with ``synchronous=NORMAL``: the
   statements write the WAL into the operating system's cache and never wait
   for the disk;
2. asks its flush thread to ``fdatasync`` the WAL, and resolves the batch's
   futures when that flush returns (with ``audit.sqlite_synchronous: normal``,
   at once).  One flush is under way at a time: what is submitted meanwhile
   is committed as one batch when it returns, so under load there is about
   one transaction and one flush per flush time, not per request.

A released answer's entry is therefore on disk exactly as with
``synchronous=FULL``, which flushes the WAL at every commit.

The loop never waits for a lock: the connection's busy timeout is zero, and a
batch that finds the database locked (another process's commit, this
process's signed checkpoint) is retried from a loop timer, backing off up to
``RETRY_MAX_S`` between tries, for at most ``BUSY_GIVE_UP_S``; then its callers
get an :class:`AuditError`, as for any failed commit.  WAL checkpoints, which
copy the WAL into the database file and flush it, would otherwise run inside a
commit every thousand pages; this connection turns them off and the log's
writer thread runs a passive one every ``WAL_CHECKPOINT_EVERY`` commits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clearance.audit.log import AuditLog, _Item

log = logging.getLogger("clearance.audit")

RETRY_FIRST_S = 0.0005
RETRY_MAX_S = 0.02
BUSY_GIVE_UP_S = 10.0
WAL_CHECKPOINT_EVERY = 250


class CommitterBusy(Exception):
    """The batch could not take the write lock now; it is retried."""


def is_busy(err: BaseException) -> bool:
    """True when ``err`` says the database was locked by someone else (the batch may be tried again)."""
    if isinstance(err, CommitterBusy):
        return True
    if not isinstance(err, sqlite3.OperationalError):
        return False
    code = getattr(err, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(err) or "busy" in str(err)


class LoopCommitter:
    """Commits one :class:`AuditLog`'s SQLite batches on one event loop (see the module docstring)."""

    def __init__(self, audit: AuditLog, loop: asyncio.AbstractEventLoop, path: str, flush: bool,
                 request_wal_checkpoint: Callable[[], None]) -> None:
        self._log = audit
        self.loop = loop
        self._flush_wanted = flush
        self._request_wal_checkpoint = request_wal_checkpoint
        self._conn = sqlite3.connect(path, timeout=0, check_same_thread=False)
        try:
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=0", "wal_autocheckpoint=0"):
                self._conn.execute(f"PRAGMA {pragma}")
            self._conn.execute("SELECT size FROM audit_head WHERE id = 1").fetchall()  # the WAL exists from here
            self._wal = os.open(path + "-wal", os.O_RDONLY | os.O_CLOEXEC) if flush else -1
        except BaseException:
            self._conn.close()
            raise
        self._pending: list[_Item] = []
        self._scheduled = False
        self._retry: asyncio.TimerHandle | None = None
        self._busy_since: float | None = None
        self._backoff = RETRY_FIRST_S
        self._since_wal_checkpoint = 0
        # The committed batch (and its first index) whose flush is under way; one at a time.
        self._flushing: tuple[list[_Item], int] | None = None
        # Asks for the flush thread: True to flush, None to stop.  A SimpleQueue wakes it with one
        # lock hand-over, and its get() takes the GIL once.
        self._asks: queue.SimpleQueue[bool | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        if flush:
            self._thread = threading.Thread(target=self._flush_run, name="clearance-audit-flush", daemon=True)
            self._thread.start()

    # -- on the loop -------------------------------------------------------

    def submit(self, item: _Item) -> None:
        """Queue ``item``; it is committed at the end of this turn of the loop."""
        self._pending.append(item)
        self.schedule()

    def schedule(self) -> None:
        """Commit what is pending (and set aside) at the end of this turn of the loop."""
        if not self._scheduled and self._retry is None and (self._pending or self._log._later):
            self._scheduled = True
            self.loop.call_soon(self.commit_pending)

    def commit_pending(self) -> None:
        """Commit everything pending and set aside as one batch (a timer retries it when locked)."""
        self._scheduled = False
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._flushing is not None:
            return  # a flush is under way: what comes meanwhile is committed as one batch when it returns
        batch = self._log._take_later() + self._pending
        self._pending = []
        if not batch:
            return
        try:
            start = self._log._commit(self._conn, batch, blocking=False)
        except Exception as e:
            self._rollback()
            if is_busy(e):
                self._pending = batch
                self._retry_later(e)
                return
            self._fail(batch, e)
            return
        self._busy_since = None
        self._backoff = RETRY_FIRST_S
        self._since_wal_checkpoint += 1
        if self._since_wal_checkpoint >= WAL_CHECKPOINT_EVERY:
            self._since_wal_checkpoint = 0
            self._request_wal_checkpoint()
        if not self._flush_wanted:
            _settle(batch, start, None)
            return
        self._flushing = (batch, start)
        self._asks.put(True)

    def _retry_later(self, err: BaseException) -> None:
        now = time.monotonic()
        if self._busy_since is None:
            self._busy_since = now
        elif now - self._busy_since > BUSY_GIVE_UP_S:
            batch, self._pending = self._pending, []
            self._busy_since = None
            self._fail(batch, err)
            return
        self._retry = self.loop.call_later(self._backoff, self.commit_pending)
        self._backoff = min(self._backoff * 2, RETRY_MAX_S)

    def _rollback(self) -> None:
        try:
            self._conn.rollback()
        except Exception:  # the next batch's statements fail too, and say why
            log.exception("audit rollback failed")

    def _fail(self, batch: list[_Item], err: BaseException) -> None:
        from clearance.audit.log import AuditError

        if not isinstance(err, AuditError):
            log.error("audit batch of %d entries failed: %s", len(batch), type(err).__name__)
            err = AuditError(f"audit entry not recorded: {type(err).__name__}")
        _settle(batch, None, err)

    def _flushed(self, err: BaseException | None) -> None:
        """The flush of the last committed batch has returned: release it, and commit what came meanwhile."""
        if self._flushing is None:
            return
        (batch, start), self._flushing = self._flushing, None
        if err is None:
            _settle(batch, start, None)
        else:
            self._fail(batch, err)
        if self._pending or self._log._later:
            self.commit_pending()

    async def aclose(self) -> list[_Item]:
        """Commit what is pending and wait for its flush; then ``close`` (returning what is left)."""
        self.commit_pending()  # what is left then is waiting for a flush or for a lock (retried by a timer)
        deadline = time.monotonic() + BUSY_GIVE_UP_S + 1
        while (self._pending or self._flushing) and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        return self.close()

    def close(self) -> list[_Item]:
        """Stop the flush thread and close the connection; returns the entries not yet committed."""
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        pending, self._pending = self._pending, []
        self._asks.put(None)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        if self._wal >= 0:
            os.close(self._wal)
            self._wal = -1
        self._conn.close()
        return pending

    # -- the flush thread --------------------------------------------------

    def _flush_run(self) -> None:
        while self._asks.get():
            err: BaseException | None = None
            try:
                os.fdatasync(self._wal)
            except OSError as e:
                log.error("audit WAL flush failed: %s", e)
                err = e
            try:
                self.loop.call_soon_threadsafe(self._flushed, err)
            except RuntimeError:  # the loop has closed; nobody is waiting
                return


def settle_all(pairs: list[tuple[Any, int | None]], exc: BaseException | None) -> None:
    """Settle futures (asyncio ones on their own loop): each with its index, or all with ``exc``."""
    for fut, idx in pairs:
        if fut is None or fut.done():
            continue
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(idx)


def _settle(batch: list[_Item], start: int | None, exc: BaseException | None) -> None:
    """Resolve the futures of a batch committed on this loop (or tell them it failed)."""
    settle_all([(it.waiter, None if start is None else start + i) for i, it in enumerate(batch)], exc)

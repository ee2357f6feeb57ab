"""The append path of the audit log: group commit, sequencing and checkpoints.

``AuditLog.append`` queues an entry and resolves once the entry is durably
committed.  One background writer thread drains the queue and commits each
batch in a single transaction that:

1. locks the sequencer row ``audit_head`` (an UPDATE taking the next
   ``n`` indices; on PostgreSQL concurrent replicas wait on this row lock),
2. extends the stored Merkle frontier with the batch's leaf hashes,
3. inserts the entries,

so every committed size of the log has a matching frontier and all replicas
share one total order.  A checkpoint locks the same row, so checkpoints are
issued in order of size and their roots are always consistent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, insert, select, update

from clearance.audit.checkpoint import Checkpoint, CheckpointSigner
from clearance.audit.merkle import Frontier, leaf_hash
from clearance.audit.settings import AuditSettings
from clearance.audit.tables import AuditCheckpointRow, AuditEntryRow, AuditHead
from clearance.types import AuditEntry

log = logging.getLogger("clearance.audit")

_head = AuditHead.__table__
_entries = AuditEntryRow.__table__
_checkpoints = AuditCheckpointRow.__table__

Resolve = Callable[[int | None, BaseException | None], None]


class AuditError(Exception):
    """The audit log could not record an entry or a checkpoint."""


def canonical_json(entry: AuditEntry) -> str:
    """The canonical encoding of an entry: sorted keys, no spaces, UTF-8, no NaN."""
    try:
        return json.dumps(
            dataclasses.asdict(entry), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except ValueError as e:
        raise AuditError(f"audit entry cannot be encoded: {e}") from None


def entry_leaf_hash(body: str) -> bytes:
    """The Merkle leaf hash of a stored entry body."""
    return leaf_hash(body.encode())


@dataclasses.dataclass(slots=True)
class _Item:
    body: str
    leaf: bytes
    resolve: Resolve


_STOP = object()
PRUNE_EVERY_SECONDS = 3600.0


def _settle(fut: asyncio.Future, idx: int | None, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(idx)


class AuditLog:
    """The audit log of one gateway process (any number may share a PostgreSQL store).

    ``start()`` launches the writer thread (``append`` starts it on first use);
    ``await aclose()`` (or ``close()``) flushes queued entries, issues a final
    checkpoint and stops it.  When ``settings.enabled`` is false, appends are
    accepted and dropped and return -1.
    """

    def __init__(self, engine: Engine, settings: AuditSettings, signer: CheckpointSigner | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.signer = signer
        self._sqlite = engine.dialect.name == "sqlite"
        self._q: queue.SimpleQueue[_Item | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    # -- lifecycle --------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread (idempotent)."""
        with self._lock:
            if self._closed:
                raise AuditError("the audit log is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="clearance-audit-writer", daemon=True)
                self._thread.start()

    def close(self) -> None:
        """Flush queued entries, write a final checkpoint and stop the writer."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._q.put(_STOP)
            thread.join()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    # -- appending ---------------------------------------------------------

    async def append(self, entry: AuditEntry) -> int:
        """Record one entry; returns its index once it is committed."""
        if not self.settings.enabled:
            return -1
        body = canonical_json(entry)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()

        def resolve(idx: int | None, exc: BaseException | None) -> None:
            try:
                loop.call_soon_threadsafe(_settle, fut, idx, exc)
            except RuntimeError:  # the loop has closed; nobody is waiting
                pass

        self._submit(_Item(body, entry_leaf_hash(body), resolve))
        return await fut

    def append_sync(self, entry: AuditEntry) -> int:
        """Record one entry from synchronous code; blocks until committed."""
        if not self.settings.enabled:
            return -1
        body = canonical_json(entry)
        item = _Item(body, entry_leaf_hash(body), lambda i, e: None)
        if self._thread is None:
            if self._closed:
                raise AuditError("the audit log is closed")
            with self.engine.connect() as conn:
                return self._commit(conn, [item])[0]
        fut: Future[int] = Future()

        def resolve(idx: int | None, exc: BaseException | None) -> None:
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(idx)  # type: ignore[arg-type]

        item.resolve = resolve
        self._submit(item)
        return fut.result()

    def _submit(self, item: _Item) -> None:
        if self._thread is None:
            self.start()
        if self._closed:
            raise AuditError("the audit log is closed")
        self._q.put(item)

    # -- the writer --------------------------------------------------------

    def _run(self) -> None:
        interval = self.settings.checkpoint_interval_seconds
        max_size = self.settings.batch_max_size
        latency = self.settings.batch_max_latency_ms / 1000.0
        next_checkpoint = time.monotonic() + interval
        next_prune = time.monotonic()
        conn = self.engine.connect()
        if self._sqlite:
            conn.exec_driver_sql("PRAGMA synchronous=FULL")
            conn.commit()
        stopping = False
        try:
            while not stopping:
                timeout = max(0.0, next_checkpoint - time.monotonic())
                try:
                    first = self._q.get(timeout=timeout)
                except queue.Empty:
                    first = None
                batch: list[_Item] = []
                if first is _STOP:
                    stopping = True
                elif first is not None:
                    batch.append(first)  # type: ignore[arg-type]
                    deadline = time.monotonic() + latency
                    while len(batch) < max_size:
                        try:
                            wait = deadline - time.monotonic()
                            item = self._q.get(timeout=wait) if wait > 0 else self._q.get_nowait()
                        except queue.Empty:
                            break
                        if item is _STOP:
                            stopping = True
                            break
                        batch.append(item)  # type: ignore[arg-type]
                if stopping:
                    batch.extend(self._drain())
                for i in range(0, len(batch), max_size):
                    self._commit_and_resolve(conn, batch[i : i + max_size])
                if stopping or time.monotonic() >= next_checkpoint:
                    next_checkpoint = time.monotonic() + interval
                    try:
                        self._checkpoint(conn)
                    except Exception:  # a failed periodic checkpoint is retried at the next interval
                        log.exception("audit checkpoint failed")
                    if self.settings.retention_days is not None and time.monotonic() >= next_prune:
                        next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
                        self._prune()
        finally:
            conn.close()

    def _prune(self) -> None:
        from clearance.audit.retention import prune

        before = datetime.now(UTC) - timedelta(days=self.settings.retention_days or 0)
        try:
            n = prune(self.engine, before)
        except Exception:  # retention is retried later; appends are unaffected
            log.exception("audit retention failed")
            return
        if n:
            log.info("audit retention pruned %d entries", n)

    def _drain(self) -> list[_Item]:
        items = []
        while True:
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                return items
            if item is not _STOP:
                items.append(item)  # type: ignore[arg-type]

    def _commit_and_resolve(self, conn: Connection, batch: list[_Item]) -> None:
        try:
            indices = self._commit(conn, batch)
        except Exception as e:  # every waiting caller learns that its entry is not recorded
            log.error("audit batch of %d entries failed: %s", len(batch), type(e).__name__)
            err = AuditError(f"audit entry not recorded: {type(e).__name__}")
            for item in batch:
                item.resolve(None, err)
            return
        for item, idx in zip(batch, indices):
            item.resolve(idx, None)

    def _commit(self, conn: Connection, batch: list[_Item]) -> list[int]:
        """Sequence and commit one batch in one transaction; returns the indices."""
        n = len(batch)
        now = datetime.now(UTC)
        try:
            with conn.begin():
                new_size, frontier_bytes = conn.execute(
                    update(_head)
                    .where(_head.c.id == 1)
                    .values(size=_head.c.size + n)
                    .returning(_head.c.size, _head.c.frontier)
                ).one()
                start = new_size - n
                frontier = Frontier.from_bytes(start, frontier_bytes)
                for item in batch:
                    frontier.append(item.leaf)
                conn.execute(update(_head).where(_head.c.id == 1).values(frontier=frontier.to_bytes()))
                conn.execute(
                    insert(_entries),
                    [
                        {"idx": start + i, "body": item.body, "leaf_hash": item.leaf, "logged_at": now}
                        for i, item in enumerate(batch)
                    ],
                )
        except Exception:
            conn.rollback()
            raise
        return list(range(start, start + n))

    # -- checkpoints -------------------------------------------------------

    def checkpoint(self) -> str:
        """Issue a checkpoint of the current tree if it grew; return the latest signed note."""
        with self.engine.connect() as conn:
            return self._checkpoint(conn)

    def _checkpoint(self, conn: Connection) -> str:
        with conn.begin():
            size, frontier_bytes = conn.execute(
                update(_head).where(_head.c.id == 1).values(size=_head.c.size).returning(_head.c.size, _head.c.frontier)
            ).one()
            latest = conn.execute(
                select(_checkpoints.c.size, _checkpoints.c.note).order_by(_checkpoints.c.size.desc()).limit(1)
            ).first()
            if latest is not None and latest.size >= size:
                return latest.note
            root = Frontier.from_bytes(size, frontier_bytes).root()
            text = Checkpoint(self.settings.origin, size, root).text()
            note = self.signer.sign(text) if self.signer is not None else text
            conn.execute(
                insert(_checkpoints).values(size=size, root=root, note=note, created_at=datetime.now(UTC))
            )
            return note

    def latest_checkpoint(self) -> str | None:
        """The newest stored checkpoint note, if any."""
        with self.engine.connect() as conn:
            return conn.execute(select(_checkpoints.c.note).order_by(_checkpoints.c.size.desc()).limit(1)).scalar()

    def size(self) -> int:
        """The number of entries committed so far."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(_head.c.size).where(_head.c.id == 1)).scalar_one())

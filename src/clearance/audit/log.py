"""The append path of the audit log: group commit, sequencing and checkpoints.

``AuditLog.append`` queues an entry and resolves once the entry is committed
(on SQLite with ``synchronous=FULL`` unless ``audit.sqlite_synchronous`` says
``normal``; see docs/audit.md for what each level survives).  One background writer thread drains the queue and commits each
batch in a single transaction that:

1. locks the sequencer row ``audit_head`` (an UPDATE taking the next
   ``n`` indices; on PostgreSQL concurrent replicas wait on this row lock),
2. extends the stored Merkle frontier with the batch's leaf hashes,
3. inserts the entries,

so every committed size of the log has a matching frontier and all replicas
share one total order.  A checkpoint locks the same row, so checkpoints are
issued in order of size and their roots are always consistent.

``AuditLog.submit`` queues an entry at once and returns the future that
``append`` awaits, so a caller can let the commit run while it works (the
gateway commits a request's decision while the upstream answers).
``AuditLog.append_later`` sets aside an entry nobody waits for (a completion
entry) without waking the writer: the writer takes such entries into the
next batch it commits for someone, or is woken for them by a loop timer
``audit.completion_max_delay_ms`` later, so under load they cost neither a
transaction nor a thread wake-up of their own.

The hot path is kept cheap, because the writer thread's Python work holds
the GIL that the gateway's event loop needs:

- entries are encoded with orjson; the leaf hash is taken in ``append``;
- the writer talks to the driver (sqlite3 or psycopg) directly with SQL
  text built once, so no statement is compiled per batch;
- the writer remembers the head it last wrote.  A batch first tries one
  conditional UPDATE (``... WHERE size = <remembered> AND frontier =
  <remembered>``) that takes the indices and stores the new frontier at
  once; on PostgreSQL that UPDATE and the INSERT are one statement, one
  round trip, committed on its own.  Only when another writer (a replica)
  moved the head in between does the batch fall back to reading the head
  under its lock and writing the frontier after it;
- all callers of a batch waiting on one event loop are woken by one
  ``call_soon_threadsafe``.

When the log stores content (``audit.store_content``), an entry's encrypted
prompt and completion are made in ``append`` too and inserted into
``audit_content`` by the same transaction as the entry (on PostgreSQL by the
same statement).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import logging
import operator
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, insert, select, update

from clearance.audit.checkpoint import Checkpoint, CheckpointSigner
from clearance.audit.content import ContentCipher, ContentError, SealedPart
from clearance.audit.loop_commit import CommitterBusy, LoopCommitter, is_busy, settle_all
from clearance.audit.merkle import Frontier, leaf_hash
from clearance.audit.publish import note_size, publish
from clearance.audit.settings import AuditSettings
from clearance.audit.tables import AuditCheckpointRow, AuditEntryRow, AuditHead
from clearance.types import AuditEntry, Message

log = logging.getLogger("clearance.audit")

_head = AuditHead.__table__
_entries = AuditEntryRow.__table__
_checkpoints = AuditCheckpointRow.__table__


class AuditError(Exception):
    """The audit log could not record an entry or a checkpoint."""


# -- encoding ---------------------------------------------------------------

_FIELDS = tuple(sorted(f.name for f in dataclasses.fields(AuditEntry)))
_values = operator.attrgetter(*_FIELDS)
_ORJSON_OPTS = orjson.OPT_SORT_KEYS


def _strict_json(entry: AuditEntry) -> bytes:
    """The standard-library encoding; used for what orjson cannot say canonically."""
    try:
        return json.dumps(
            dataclasses.asdict(entry), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
    except (ValueError, TypeError) as e:  # NaN/infinity, lone surrogates, unserialisable values
        raise AuditError(f"audit entry cannot be encoded: {e}") from None


def encode_entry(entry: AuditEntry) -> bytes:
    """The canonical encoding of an entry as UTF-8 bytes: sorted keys, no spaces, no NaN.

    Numbers are written in their shortest round-trip form.  orjson writes NaN
    and infinity as ``null``, and no field of a normal entry is null, so an
    encoding containing ``null`` is redone with the strict standard-library
    encoder, which refuses NaN; values orjson refuses go the same way.
    """
    try:
        body = orjson.dumps(dict(zip(_FIELDS, _values(entry))), option=_ORJSON_OPTS)
    except TypeError:  # orjson.JSONEncodeError: integers beyond 64 bits, lone surrogates, odd types
        return _strict_json(entry)
    if b"null" in body:
        return _strict_json(entry)
    return body


def canonical_json(entry: AuditEntry) -> str:
    """The canonical encoding of an entry: sorted keys, no spaces, UTF-8, no NaN."""
    return encode_entry(entry).decode()


def entry_leaf_hash(body: str) -> bytes:
    """The Merkle leaf hash of a stored entry body."""
    return leaf_hash(body.encode())


# -- the queue --------------------------------------------------------------


class _Item:
    """One queued entry and whoever waits for it: an asyncio future (with its loop) or a thread's future.

    ``content`` holds the entry's encrypted prompt and completion when the log stores content.
    """

    __slots__ = ("body", "leaf", "waiter", "loop", "content")

    def __init__(
        self, body: str, leaf: bytes, waiter: Any = None, loop: asyncio.AbstractEventLoop | None = None,
        content: list[SealedPart] | None = None,
    ) -> None:
        self.body = body
        self.leaf = leaf
        self.waiter = waiter
        self.loop = loop
        self.content = content


def _content_rows(items: list[_Item], start: int, now: Any) -> list[tuple]:
    """``audit_content`` rows of a batch whose first entry gets index ``start``."""
    return [(start + i, p.part, p.request_id, p.key_id, p.nonce, p.ciphertext, now)
            for i, it in enumerate(items) if it.content for p in it.content]


_CONTENT_COLUMNS = "audit_content (entry_idx, part, request_id, key_id, nonce, ciphertext, logged_at)"


_STOP = object()
_NUDGE = object()  # wakes the writer for entries set aside by append_later
_WAL_CHECKPOINT = object()  # asks the writer for a passive SQLite WAL checkpoint (see loop_commit)
PRUNE_EVERY_SECONDS = 3600.0


def _resolve(batch: list[_Item], start: int | None, exc: BaseException | None) -> None:
    """Wake a committed (or failed) batch's callers: threads' futures here, asyncio futures on their loops."""
    threads: list[tuple[Any, int | None]] = []  # concurrent.futures.Future: settled from any thread
    groups: dict[asyncio.AbstractEventLoop, list[tuple[Any, int | None]]] = {}
    for i, item in enumerate(batch):
        idx = None if start is None else start + i
        if item.loop is None:
            threads.append((item.waiter, idx))
            continue
        group = groups.get(item.loop)
        if group is None:
            groups[item.loop] = group = []
        group.append((item.waiter, idx))
    settle_all(threads, exc)
    for loop, pairs in groups.items():
        try:
            loop.call_soon_threadsafe(settle_all, pairs, exc)  # one callback per batch and loop
        except RuntimeError:  # the loop has closed; nobody is waiting
            pass


# -- SQL for one batch, per driver --------------------------------------------


class _SqliteBatch:
    """Commit a batch through a ``sqlite3`` connection (in-process: statements are cheap)."""

    # A failed optimistic UPDATE costs nothing here, so it is always tried.
    skip_after_miss = 0

    def __init__(self, synchronous: str = "full") -> None:
        self.synchronous = {"full": "FULL", "normal": "NORMAL"}[synchronous]
    FAST = "UPDATE audit_head SET size = ?, frontier = ? WHERE id = 1 AND size = ? AND frontier = ?"
    TAKE = "UPDATE audit_head SET size = size + ? WHERE id = 1 RETURNING size, frontier"
    SET_FRONTIER = "UPDATE audit_head SET frontier = ? WHERE id = 1"
    INSERT = "INSERT INTO audit_entries (idx, body, leaf_hash, logged_at) VALUES (?, ?, ?, ?)"
    INSERT_CONTENT = f"INSERT INTO {_CONTENT_COLUMNS} VALUES (?, ?, ?, ?, ?, ?, ?)"

    def prepare(self, dbapi: Any) -> None:
        dbapi.execute(f"PRAGMA synchronous={self.synchronous}")

    @staticmethod
    def release(dbapi: Any) -> None:
        pass

    def fast(
        self, dbapi: Any, start: int, old: bytes, new: bytes, items: list[_Item], now: Any, content: bool
    ) -> bool:
        cur = dbapi.cursor()
        # sqlite3 opens the transaction before this UPDATE, which takes the database's write lock.
        cur.execute(self.FAST, (start + len(items), new, start, old))
        if cur.rowcount != 1:
            return False  # the transaction stays open; ``slow`` continues it under the same lock
        cur.executemany(self.INSERT, [(start + i, it.body, it.leaf, now) for i, it in enumerate(items)])
        if content:
            cur.executemany(self.INSERT_CONTENT, _content_rows(items, start, now))
        dbapi.commit()
        return True

    def slow(self, dbapi: Any, items: list[_Item], now: Any, content: bool) -> tuple[int, Frontier]:
        n = len(items)
        cur = dbapi.cursor()
        new_size, frontier_bytes = cur.execute(self.TAKE, (n,)).fetchall()[0]
        start = new_size - n
        frontier = Frontier.from_bytes(start, bytes(frontier_bytes))
        frontier.extend([it.leaf for it in items])
        cur.execute(self.SET_FRONTIER, (frontier.to_bytes(),))
        cur.executemany(self.INSERT, [(start + i, it.body, it.leaf, now) for i, it in enumerate(items)])
        if content:
            cur.executemany(self.INSERT_CONTENT, _content_rows(items, start, now))
        dbapi.commit()
        return start, frontier

    @staticmethod
    def rollback(dbapi: Any) -> None:
        dbapi.rollback()

    @staticmethod
    def broken(dbapi: Any) -> bool:
        return False


class _PostgresBatch:
    """Commit a batch through a psycopg connection kept in autocommit mode (round trips matter)."""

    # After another replica moved the head, its next batches likely will too: read the head for a while.
    skip_after_miss = 8
    # One statement, one implicit transaction: it inserts the entries only if the head was still as
    # remembered (under its row lock); otherwise it changes nothing and inserts no row.
    FAST = (
        "WITH h AS (UPDATE audit_head SET size = %s, frontier = %s WHERE id = 1 AND size = %s AND frontier = %s"
        " RETURNING size) "
        "INSERT INTO audit_entries (idx, body, leaf_hash, logged_at) "
        "SELECT %s::bigint + u.ord - 1, u.body, u.leaf, %s FROM h, "
        "unnest(%b::text[], %b::bytea[]) WITH ORDINALITY AS u(body, leaf, ord)"
    )
    # The same for a batch of one, without arrays (dumping arrays costs more than the rest of the call).
    FAST_ONE = (
        "WITH h AS (UPDATE audit_head SET size = %s, frontier = %s WHERE id = 1 AND size = %s AND frontier = %s"
        " RETURNING size) "
        "INSERT INTO audit_entries (idx, body, leaf_hash, logged_at) SELECT %s, %s, %s, %s FROM h"
    )
    # With encrypted content: the content rows are inserted by a data-modifying CTE of the same
    # statement, so they commit (or not) with the entries, still in one round trip.
    FAST_CONTENT = (
        "WITH h AS (UPDATE audit_head SET size = %s, frontier = %s WHERE id = 1 AND size = %s AND frontier = %s"
        " RETURNING size), "
        f"c AS (INSERT INTO {_CONTENT_COLUMNS} "
        "SELECT v.idx, v.part, v.rid, v.kid, v.nonce, v.ct, %s FROM h, "
        "unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %b::bytea[], %b::bytea[])"
        " AS v(idx, part, rid, kid, nonce, ct)) "
        "INSERT INTO audit_entries (idx, body, leaf_hash, logged_at) "
        "SELECT %s::bigint + u.ord - 1, u.body, u.leaf, %s FROM h, "
        "unnest(%b::text[], %b::bytea[]) WITH ORDINALITY AS u(body, leaf, ord)"
    )
    TAKE = "UPDATE audit_head SET size = size + %s WHERE id = 1 RETURNING size, frontier"
    SET_FRONTIER = "UPDATE audit_head SET frontier = %s WHERE id = 1"
    INSERT = "INSERT INTO audit_entries (idx, body, leaf_hash, logged_at) VALUES (%s, %s, %s, %s)"
    INSERT_CONTENT = f"INSERT INTO {_CONTENT_COLUMNS} VALUES (%s, %s, %s, %s, %s, %s, %s)"

    @staticmethod
    def prepare(dbapi: Any) -> None:
        dbapi.autocommit = True

    @staticmethod
    def release(dbapi: Any) -> None:
        if not dbapi.closed:
            dbapi.autocommit = False

    def fast(
        self, dbapi: Any, start: int, old: bytes, new: bytes, items: list[_Item], now: Any, content: bool
    ) -> bool:
        n = len(items)
        if content:
            idx, part, rid, kid, nonce, ct, _ = zip(*_content_rows(items, start, now), strict=True)
            cur = dbapi.execute(self.FAST_CONTENT, (
                start + n, new, start, old, now, list(idx), list(part), list(rid), list(kid), list(nonce), list(ct),
                start, now, [it.body for it in items], [it.leaf for it in items],
            ))
        elif n == 1:
            item = items[0]
            cur = dbapi.execute(self.FAST_ONE, (start + 1, new, start, old, start, item.body, item.leaf, now))
        else:
            cur = dbapi.execute(
                self.FAST, (start + n, new, start, old, start, now, [it.body for it in items], [it.leaf for it in items])
            )
        if cur.rowcount == n:
            return True
        if cur.rowcount != 0:  # cannot happen: the statement is all or nothing
            raise AuditError(f"audit batch wrote {cur.rowcount} of {n} entries")
        return False

    def slow(self, dbapi: Any, items: list[_Item], now: Any, content: bool) -> tuple[int, Frontier]:
        n = len(items)
        with dbapi.transaction():
            cur = dbapi.cursor()
            new_size, frontier_bytes = cur.execute(self.TAKE, (n,)).fetchone()
            start = new_size - n
            frontier = Frontier.from_bytes(start, bytes(frontier_bytes))
            frontier.extend([it.leaf for it in items])
            cur.execute(self.SET_FRONTIER, (frontier.to_bytes(),))
            cur.executemany(self.INSERT, [(start + i, it.body, it.leaf, now) for i, it in enumerate(items)])
            if content:
                cur.executemany(self.INSERT_CONTENT, _content_rows(items, start, now))
        return start, frontier

    @staticmethod
    def rollback(dbapi: Any) -> None:
        if not dbapi.closed and not dbapi.autocommit:
            dbapi.rollback()

    @staticmethod
    def broken(dbapi: Any) -> bool:
        return bool(dbapi.closed or dbapi.broken)


def _sqlite_file(engine: Engine) -> bool:
    """True when the engine's SQLite database is a file that a second connection can open."""
    db = engine.url.database
    return bool(db) and db != ":memory:" and not db.startswith("file:")


class AuditLog:
    """The audit log of one gateway process (any number may share a PostgreSQL store).

    ``start()`` launches the writer thread (``append`` starts it on first use);
    ``await aclose()`` (or ``close()``) flushes queued entries, issues a final
    checkpoint and stops it.  When ``settings.enabled`` is false, appends are
    accepted and dropped and return -1.  With a ``content`` cipher (the
    ``audit.store_content`` option) the prompt and completion given to
    ``append`` are encrypted and committed in the same transaction as their
    entry; without one they are ignored and only the entry's digests are kept.
    """

    def __init__(
        self, engine: Engine, settings: AuditSettings, signer: CheckpointSigner | None = None,
        content: ContentCipher | None = None, publish_dir: Path | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.signer = signer
        self.content = content
        # Where checkpoints are also written as files (clearance.audit.publish); None: not published.
        self.publish_dir = publish_dir
        self._published = -1  # the size of the newest checkpoint this process published
        dialect = engine.dialect
        self._sqlite = dialect.name == "sqlite"
        if self._sqlite:
            self._sql: _SqliteBatch | _PostgresBatch = _SqliteBatch(settings.sqlite_synchronous)
        elif dialect.name == "postgresql" and dialect.driver == "psycopg":
            self._sql = _PostgresBatch()
        else:
            raise AuditError(f"the audit log supports SQLite and PostgreSQL (psycopg), not {dialect.name}")
        # SQLite stores DateTime as text; use SQLAlchemy's own format so queries on logged_at keep working.
        self._time_param = _entries.c.logged_at.type.dialect_impl(dialect).bind_processor(dialect)
        self._q: queue.SimpleQueue[_Item | object] = queue.SimpleQueue()
        # Entries nobody waits for (append_later); the writer takes them with its next batch.
        self._later: collections.deque[_Item] = collections.deque()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self._closed = False
        # The head this process last committed: (size, frontier bytes, frontier); None when unknown.
        self._known: tuple[int, bytes, Frontier] | None = None
        self._skip_fast = 0
        # Commits of entries submitted on an event loop, on that loop (SQLite files only; see loop_commit).
        self._committer: LoopCommitter | None = None
        self._loop_commits = self._sqlite and settings.sqlite_commit_on == "event_loop" and _sqlite_file(engine)

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
        """Flush queued entries, write a final checkpoint and stop the writer.

        Entries submitted on an event loop are committed there: ``await
        aclose()`` on that loop also waits for their disk flush.  Here, what
        the loop had not committed yet goes to the writer thread.
        """
        committer, self._committer = self._committer, None
        if committer is not None:
            self._loop_commits = False
            self._to_writer(committer.close())
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._q.put(_STOP)
            thread.join()

    async def aclose(self) -> None:
        committer, self._committer = self._committer, None
        if committer is not None:
            self._loop_commits = False
            self._to_writer(await committer.aclose() if committer.loop is asyncio.get_running_loop()
                            else committer.close())
        await asyncio.to_thread(self.close)

    # -- appending ---------------------------------------------------------

    @property
    def stores_content(self) -> bool:
        """True when prompts and completions are kept encrypted next to the entries."""
        return self.content is not None

    async def append(
        self, entry: AuditEntry, prompt: Sequence[Message] | None = None, completion: str | None = None
    ) -> int:
        """Record one entry; returns its index once it is committed.

        ``prompt`` (the request's messages) and ``completion`` are stored
        encrypted with the entry when the log stores content, each only if
        the entry has its digest; otherwise they are ignored.
        """
        return await self.submit(entry, prompt, completion)

    def submit(
        self, entry: AuditEntry, prompt: Sequence[Message] | None = None, completion: str | None = None
    ) -> asyncio.Future[int]:
        """Queue one entry now; the returned future gives its index once it is committed.

        What ``append`` awaits, for callers that work while the commit runs.
        Call it on a running event loop.  Raises AuditError at once when the
        entry cannot be queued (log closed, content not sealed).
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()
        if not self.settings.enabled:
            fut.set_result(-1)
            return fut
        item = self._item(entry, prompt, completion)
        item.waiter, item.loop = fut, loop
        committer = self._committer_on(loop)  # only while the log is open, its writer started
        if committer is not None:
            committer.submit(item)
        else:
            self._submit(item)
        return fut

    def append_later(self, entry: AuditEntry, completion: str | None = None) -> None:
        """Queue an entry nobody waits for; it is committed with the next batch someone waits for.

        At most ``audit.completion_max_delay_ms`` after it was queued.  A failure
        to commit it is logged by the writer, as every failed batch is.
        """
        if not self.settings.enabled:
            return
        item = self._item(entry, None, completion)
        self._ensure_open()
        later = self._later
        later.append(item)
        if len(later) == 1:  # the first set aside since the writer last took them: bound its wait
            delay = self.settings.completion_max_delay_ms / 1000.0
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            committer = self._committer_on(loop) if loop is not None else None
            if committer is not None:
                if delay <= 0:
                    committer.schedule()
                else:
                    loop.call_later(delay, committer.schedule)  # type: ignore[union-attr]
            elif loop is None or delay <= 0:
                self._q.put(_NUDGE)
            else:
                loop.call_later(delay, self._nudge)

    def _nudge(self) -> None:
        if self._later:
            self._q.put(_NUDGE)

    def _to_writer(self, items: list[_Item]) -> None:
        """Entries a loop's committer could not commit: the writer thread commits them (and wakes their callers)."""
        for item in items:
            self._q.put(item)

    def _committer_on(self, loop: asyncio.AbstractEventLoop) -> LoopCommitter | None:
        """The committer for entries submitted on ``loop``; None sends them to the writer thread."""
        committer = self._committer
        if committer is not None:
            if committer.loop is loop:
                return committer
            if not committer.loop.is_closed():
                return None  # the log serves another loop's commits; this one's go to the writer
            self._to_writer(committer.close())  # a loop that closed with entries not yet committed
            self._committer = None
        if not self._loop_commits or self._closed:
            return None
        self._ensure_open()
        try:
            self._committer = LoopCommitter(
                self, loop, self.engine.url.database, self.settings.sqlite_synchronous == "full",
                lambda: self._q.put(_WAL_CHECKPOINT),
            )
        except Exception as e:  # e.g. the schema is missing: the writer thread reports it per batch
            log.warning("audit commits stay on the writer thread: %s", e)
            self._loop_commits = False
            return None
        return self._committer

    def append_sync(
        self, entry: AuditEntry, prompt: Sequence[Message] | None = None, completion: str | None = None
    ) -> int:
        """Record one entry from synchronous code; blocks until committed."""
        if not self.settings.enabled:
            return -1
        item = self._item(entry, prompt, completion)
        if self._thread is None:
            if self._closed:
                raise AuditError("the audit log is closed")
            return self._commit_now([item])
        fut: Future[int] = Future()
        item.waiter = fut
        self._submit(item)
        return fut.result()

    def append_batch_sync(self, entries: Sequence[AuditEntry]) -> int:
        """Record ``entries`` as one batch in one transaction; returns the first index (-1 when disabled).

        The entries are encoded, hashed and committed exactly as ``append``
        does, on a connection of this call's own (not through the writer's
        queue).  For bulk imports and benchmarks; the caller chooses the batch
        size.
        """
        if not self.settings.enabled or not entries:
            return -1
        if self._closed:
            raise AuditError("the audit log is closed")
        return self._commit_now([self._item(e, None, None) for e in entries])

    def _item(self, entry: AuditEntry, prompt: Sequence[Message] | None, completion: str | None) -> _Item:
        """Encode and hash an entry (and encrypt its content) on the caller's side of the queue."""
        raw = encode_entry(entry)
        item = _Item(raw.decode(), leaf_hash(raw))
        if self.content is not None and (prompt is not None or completion is not None):
            try:
                item.content = self.content.seal_entry(entry, prompt, completion) or None
            except ContentError as e:
                raise AuditError(f"audit entry not recorded: {e}") from None
        return item

    def _ensure_open(self) -> None:
        """Start the writer on first use; refuse once the log is closed."""
        if self._thread is None:
            self.start()
        if self._closed:
            raise AuditError("the audit log is closed")

    def _submit(self, item: _Item) -> None:
        self._ensure_open()
        self._q.put(item)

    # -- the writer --------------------------------------------------------

    def _connect(self) -> Any:
        """A pooled connection for the writer, prepared for its driver (SQLite's synchronous level, autocommit)."""
        raw = self.engine.raw_connection()
        try:
            self._sql.prepare(raw.driver_connection)
        except BaseException:
            raw.invalidate()
            raise
        return raw

    def _release(self, raw: Any) -> None:
        try:
            self._sql.release(raw.driver_connection)
        except Exception:
            raw.invalidate()
            return
        raw.close()

    def _commit_now(self, batch: list[_Item]) -> int:
        """Commit ``batch`` on a connection of its own (no writer thread); returns the first index."""
        try:
            raw = self._connect()
        except Exception as e:
            raise AuditError(f"audit entry not recorded: {type(e).__name__}") from e
        try:
            return self._commit_or_fail(raw, batch)
        finally:
            if raw.dbapi_connection is not None:
                self._release(raw)

    def _commit_or_fail(self, raw: Any, batch: list[_Item]) -> int:
        """Commit ``batch``; on failure roll back, drop a broken connection and raise AuditError."""
        dbapi = raw.driver_connection
        try:
            return self._commit(dbapi, batch)
        except Exception as e:
            log.error("audit batch of %d entries failed: %s", len(batch), type(e).__name__)
            try:
                self._sql.rollback(dbapi)
                broken = self._sql.broken(dbapi)
            except Exception:
                broken = True
            if broken:
                raw.invalidate()
            raise AuditError(f"audit entry not recorded: {type(e).__name__}") from e

    def _commit(self, dbapi: Any, batch: list[_Item], blocking: bool = True) -> int:
        """Sequence and commit one batch in one transaction; returns the index of its first entry.

        With ``blocking`` false (on the event loop) it raises CommitterBusy
        instead of waiting for another thread's commit, and a batch that finds
        the database locked leaves the remembered head as it was.
        """
        now = datetime.now(UTC)
        if self._time_param is not None:
            now = self._time_param(now)
        content = any(it.content for it in batch)
        if not self._commit_lock.acquire(blocking):
            raise CommitterBusy("another batch is being committed")
        known = self._known
        try:
            return self._commit_locked(dbapi, batch, now, content)
        except Exception as e:
            if not blocking and is_busy(e):
                self._known = known  # nothing was written
            raise
        finally:
            self._commit_lock.release()

    def _commit_locked(self, dbapi: Any, batch: list[_Item], now: Any, content: bool) -> int:
        """``_commit`` under the commit lock: the remembered head's fast path, or the head read under its lock."""
        known = self._known
        self._known = None  # unknown until this batch commits
        if known is not None and not self._skip_fast:
            start, old, frontier = known
            frontier = frontier.copy()
            for item in batch:
                frontier.append(item.leaf)
            new = frontier.to_bytes()
            if self._sql.fast(dbapi, start, old, new, batch, now, content):
                self._known = (start + len(batch), new, frontier)
                return start
            self._skip_fast = self._sql.skip_after_miss
        elif self._skip_fast:
            self._skip_fast -= 1
        start, frontier = self._sql.slow(dbapi, batch, now, content)
        self._known = (start + len(batch), frontier.to_bytes(), frontier)
        return start

    def _run(self) -> None:
        interval = self.settings.checkpoint_interval_seconds
        max_size = self.settings.batch_max_size
        latency = self.settings.batch_max_latency_ms / 1000.0
        q = self._q
        next_checkpoint = time.monotonic() + interval
        next_prune = time.monotonic()
        raw: Any = None
        stopping = False
        try:
            while not stopping:
                timeout = max(0.0, next_checkpoint - time.monotonic())
                try:
                    first = q.get(timeout=timeout)
                except queue.Empty:
                    first = None
                batch: list[_Item] = []
                if first is _STOP:
                    stopping = True
                elif first is not None:
                    batch.append(first)  # type: ignore[arg-type]
                    if latency > 0:
                        stopping = self._gather(batch, max_size, time.monotonic() + latency)
                    else:
                        # Only this thread takes from the queue: when it is not empty, get_nowait succeeds.
                        while len(batch) < max_size and not q.empty():
                            item = q.get_nowait()
                            if item is _STOP:
                                stopping = True
                                break
                            batch.append(item)  # type: ignore[arg-type]
                if stopping:
                    batch.extend(self._drain())
                if _WAL_CHECKPOINT in batch:
                    batch = [it for it in batch if it is not _WAL_CHECKPOINT]
                    raw = self._wal_checkpoint(raw)
                batch = self._take_later() + [it for it in batch if it is not _NUDGE]
                for i in range(0, len(batch), max_size):
                    raw = self._commit_and_resolve(raw, batch[i : i + max_size])
                if stopping or time.monotonic() >= next_checkpoint:
                    next_checkpoint = time.monotonic() + interval
                    try:
                        self.checkpoint()
                    except Exception:  # a failed periodic checkpoint is retried at the next interval
                        log.exception("audit checkpoint failed")
                    if self.settings.retention_days is not None and time.monotonic() >= next_prune:
                        next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
                        self._prune()
        finally:
            if raw is not None and raw.dbapi_connection is not None:
                self._release(raw)

    def _wal_checkpoint(self, raw: Any) -> Any:
        """Copy the WAL into the database file without blocking anyone (the loop's commits turn their own off)."""
        try:
            if raw is None or raw.dbapi_connection is None:
                raw = self._connect()
            raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except Exception as e:  # retried after the next few hundred commits
            log.warning("audit WAL checkpoint failed: %s", type(e).__name__)
        return raw

    def _gather(self, batch: list[_Item], max_size: int, deadline: float) -> bool:
        """Wait until ``deadline`` for more entries; returns True when asked to stop."""
        while len(batch) < max_size:
            wait = deadline - time.monotonic()
            try:
                item = self._q.get(timeout=wait) if wait > 0 else self._q.get_nowait()
            except queue.Empty:
                return False
            if item is _STOP:
                return True
            batch.append(item)  # type: ignore[arg-type]
        return False

    def _take_later(self) -> list[_Item]:
        """The entries set aside by ``append_later`` so far, oldest first."""
        later = self._later
        items = []
        while later:
            items.append(later.popleft())
        return items

    def _prune(self) -> None:
        from clearance.audit.retention import prune, prune_content

        before = datetime.now(UTC) - timedelta(days=self.settings.retention_days or 0)
        for what, fn in (("content records", prune_content), ("entries", prune)):
            try:
                n = fn(self.engine, before)
            except Exception:  # retention is retried later; appends are unaffected
                log.exception("audit retention of %s failed", what)
                continue
            if n:
                log.info("audit retention pruned %d %s", n, what)

    def _drain(self) -> list[_Item]:
        items = []
        while True:
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                return items
            if item is not _STOP:
                items.append(item)  # type: ignore[arg-type]

    def _commit_and_resolve(self, raw: Any, batch: list[_Item]) -> Any:
        """Commit ``batch`` and wake its callers; returns the connection to use next (None: reconnect)."""
        try:
            if raw is None or raw.dbapi_connection is None:
                raw = self._connect()
            start = self._commit_or_fail(raw, batch)
        except Exception as e:  # every waiting caller learns that its entry is not recorded
            err = e if isinstance(e, AuditError) else AuditError(f"audit entry not recorded: {type(e).__name__}")
            if not isinstance(e, AuditError):
                log.error("audit batch of %d entries failed: %s", len(batch), type(e).__name__)
            _resolve(batch, None, err)
            return raw if raw is not None and raw.dbapi_connection is not None else None
        _resolve(batch, start, None)
        return raw

    # -- checkpoints -------------------------------------------------------

    def checkpoint(self) -> str:
        """Issue a checkpoint of the current tree if it grew; return the latest signed note.

        With a ``publish_dir`` the note is also written there once committed.
        """
        with self.engine.connect() as conn:
            if self._sqlite:
                conn.exec_driver_sql("PRAGMA synchronous=FULL")
                conn.commit()
            note = self._checkpoint(conn)
        if self.publish_dir is not None:
            self._publish(note)
        return note

    def _publish(self, note: str) -> None:
        try:
            size = note_size(note)
            if size > self._published:
                publish(self.publish_dir, note)
                self._published = size
        except (OSError, ValueError, IndexError) as e:  # loud, but the log itself goes on
            log.error("audit checkpoint not published to %s: %s", self.publish_dir, e)

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

"""The full check behind ``clearance audit verify``.

Recomputes every leaf hash from the stored entry bodies and the whole tree
from those leaves, checks the signature of every checkpoint and that the
recomputed tree has each checkpoint's root at its size (so every checkpoint
is consistent with every other one), and that the entries are numbered
0..size-1 without gaps or extras.  Reports the first entry that is bad.

What a database edit looks like to this check:

- an entry's content changed but not its stored leaf hash: that entry is named;
- content and leaf hash both changed, entries swapped, inserted or removed in
  the middle: the first checkpoint after the edit no longer matches; the bad
  entry lies between that checkpoint and the previous good one (checkpoints
  are signed, so this cannot be hidden without the signing key);
- entries deleted at the end, or beyond the head: the size no longer matches
  the head row and the checkpoints;
- a checkpoint edited: its signature or its stored size/root fails.

Against the operator of the database itself (who may delete checkpoint rows,
rewrite the head and recompute hashes), the log is checked against
checkpoints held elsewhere (``trusted``: mirrored published checkpoints, a
checkpoint an auditor kept): each must verify, must be in the database with
the same root, and the entries must hash to its root at its size; a trusted
checkpoint larger than the log means its tail was cut off.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field

from sqlalchemy import Engine, select

from clearance.audit.checkpoint import Checkpoint, NoteError, NoteVerifier, parse_checkpoint, split_note
from clearance.audit.merkle import Frontier
from clearance.audit.tables import AuditCheckpointRow, AuditEntryRow, AuditHead

_head = AuditHead.__table__
_entries = AuditEntryRow.__table__
_checkpoints = AuditCheckpointRow.__table__


@dataclass(frozen=True)
class Problem:
    message: str
    # The first entry that is (or may be) bad, when the problem is about entries.
    index: int | None = None


@dataclass
class VerifyResult:
    size: int = 0
    entries_checked: int = 0
    checkpoints_checked: int = 0
    trusted_checked: int = 0
    signatures_checked: int = 0
    pruned_size: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_entry(self) -> int | None:
        indices = [p.index for p in self.problems if p.index is not None]
        return min(indices) if indices else None


@dataclass(frozen=True)
class StoredCheckpoint:
    size: int
    root: bytes
    note: str


def read_checkpoint_text(note: str, verifier: NoteVerifier | None) -> str:
    """The text of a stored note, its signature checked when a verifier is given."""
    if verifier is not None:
        return verifier.verify(note)
    if "\n\n" in note:
        return split_note(note)[0]
    return note


def load_checkpoints(engine: Engine) -> list[StoredCheckpoint]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(_checkpoints.c.size, _checkpoints.c.root, _checkpoints.c.note).order_by(_checkpoints.c.size)
        ).all()
    return [StoredCheckpoint(int(r.size), bytes(r.root), r.note) for r in rows]


def _check_checkpoints(
    stored: list[StoredCheckpoint], verifier: NoteVerifier | None, origin: str | None, result: VerifyResult
) -> dict[int, bytes]:
    """Check each checkpoint's signature and columns; return size -> signed root."""
    roots: dict[int, bytes] = {}
    for cp in stored:
        try:
            text = read_checkpoint_text(cp.note, verifier)
            parsed: Checkpoint = parse_checkpoint(text)
        except NoteError as e:
            result.problems.append(Problem(f"checkpoint stored at size {cp.size}: {e}"))
            continue
        if verifier is not None:
            result.signatures_checked += 1
        if origin is not None and parsed.origin != origin:
            result.problems.append(Problem(f"checkpoint at size {cp.size} names origin {parsed.origin!r}, not {origin!r}"))
        if parsed.size != cp.size or parsed.root != cp.root:
            result.problems.append(
                Problem(f"checkpoint stored at size {cp.size}: its size or root column differs from its signed text")
            )
        roots[parsed.size] = parsed.root
    return roots


def _stream_entries(engine: Engine, start: int, batch: int) -> Iterator[tuple[int, str, bytes]]:
    """``(idx, body, leaf_hash)`` from ``start`` on, in index order, through the driver's cursor (fast)."""
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        if engine.dialect.name == "postgresql":
            cur = raw.cursor(name="clearance_audit_verify")  # server-side: constant memory
            sql = "SELECT idx, body, leaf_hash FROM audit_entries WHERE idx >= %s ORDER BY idx"
        else:
            cur = raw.cursor()
            sql = "SELECT idx, body, leaf_hash FROM audit_entries WHERE idx >= ? ORDER BY idx"
        try:
            cur.execute(sql, (start,))
            while rows := cur.fetchmany(batch):
                yield from rows
        finally:
            cur.close()
            raw.rollback()


def _check_trusted(
    trusted: Sequence[tuple[str, str]], verifier: NoteVerifier | None, origin: str | None, result: VerifyResult
) -> dict[int, tuple[bytes, str]]:
    """Check each trusted ``(label, note)``; return size -> (root, label) of those that verify."""
    out: dict[int, tuple[bytes, str]] = {}
    for label, note in trusted:
        try:
            parsed = parse_checkpoint(read_checkpoint_text(note, verifier))
        except (NoteError, ValueError) as e:
            result.problems.append(Problem(f"trusted checkpoint {label}: {e}"))
            continue
        if origin is not None and parsed.origin != origin:
            result.problems.append(Problem(f"trusted checkpoint {label} names origin {parsed.origin!r}, not {origin!r}"))
            continue
        seen = out.get(parsed.size)
        if seen is not None and seen[0] != parsed.root:
            result.problems.append(Problem(f"trusted checkpoints {seen[1]} and {label} state different roots for "
                                           f"size {parsed.size}: the log showed two different histories"))
            continue
        out[parsed.size] = (parsed.root, label)
        result.trusted_checked += 1
    return out


def _merge_trusted(
    roots: dict[int, bytes], trusted: dict[int, tuple[bytes, str]], pruned: int, result: VerifyResult
) -> None:
    """Hold the database's checkpoints to the trusted ones, and add those it lost to ``roots``."""
    for size, (root, label) in sorted(trusted.items()):
        if size in roots:
            if roots[size] != root:
                result.problems.append(Problem(f"the database's checkpoint at size {size} differs from the trusted "
                                               f"checkpoint {label}"))
            continue
        result.problems.append(Problem(f"the trusted checkpoint {label} (size {size}) is not in the database: "
                                       f"checkpoints were deleted"))
        if size >= pruned:
            roots[size] = root  # the entries must still hash to it


def verify_log(
    engine: Engine, verifier: NoteVerifier | None = None, origin: str | None = None, batch: int = 20_000,
    trusted: Sequence[tuple[str, str]] = (),
) -> VerifyResult:
    """Check the whole log behind ``engine``, and against the ``trusted`` checkpoint notes
    (``(label, note)``, such as mirrored published checkpoints); see the module docstring."""
    result = VerifyResult()
    with engine.connect() as conn:
        head = conn.execute(select(_head).where(_head.c.id == 1)).first()
    if head is None:
        result.problems.append(Problem("the audit head row is missing"))
        return result
    size, pruned = int(head.size), int(head.pruned_size)
    result.size, result.pruned_size = size, pruned
    try:
        frontier = Frontier.from_bytes(pruned, bytes(head.pruned_frontier))
        head_root = Frontier.from_bytes(size, bytes(head.frontier)).root()
    except ValueError as e:
        result.problems.append(Problem(f"the stored tree head is corrupt: {e}"))
        return result

    roots = _check_checkpoints(load_checkpoints(engine), verifier, origin, result)
    result.checkpoints_checked = len(roots)
    if trusted:
        _merge_trusted(roots, _check_trusted(trusted, verifier, origin, result), pruned, result)
    targets = sorted(s for s in roots if s >= pruned)
    if pruned in roots and frontier.root() != roots[pruned]:  # also the empty tree when nothing was pruned
        result.problems.append(Problem(f"the kept hashes of the {pruned} pruned entries do not match the checkpoint"))

    sha256 = hashlib.sha256
    hashes = frontier.hashes
    n = pruned
    t = 0
    while t < len(targets) and targets[t] <= n:
        t += 1
    next_cp = targets[t] if t < len(targets) else -1
    last_good = pruned
    entry_problem: Problem | None = None
    with closing(_stream_entries(engine, pruned, batch)) as stream:
        for idx, body, stored in stream:
            if idx != n:
                entry_problem = Problem(f"entry {n} is missing (the next stored entry is {idx})", n)
                break
            h = sha256(b"\x00" + body.encode()).digest()
            if h != stored:
                entry_problem = Problem(f"entry {n} was modified: its content does not match its leaf hash", n)
                break
            # Frontier.append, inlined for speed.
            s = n
            while s & 1:
                h = sha256(b"\x01" + hashes.pop() + h).digest()
                s >>= 1
            hashes.append(h)
            n += 1
            if n == next_cp:
                frontier.size = n
                if frontier.root() != roots[n]:
                    entry_problem = Problem(
                        f"entries {last_good}..{n - 1} do not match the signed checkpoint at size {n}: "
                        f"an entry from {last_good} on was modified, inserted, removed or reordered",
                        last_good,
                    )
                    break
                last_good = n
                t += 1
                next_cp = targets[t] if t < len(targets) else -1
    frontier.size = n
    result.entries_checked = n - pruned
    if entry_problem is not None:
        result.problems.append(entry_problem)
        return result
    if n < size:
        result.problems.append(Problem(f"entries {n}..{size - 1} are missing (the log's head says {size} entries)", n))
    elif n > size:
        result.problems.append(Problem(f"entry {size} and later were inserted beyond the log's head ({size})", size))
    elif frontier.root() != head_root:
        result.problems.append(Problem("the stored tree head does not match the entries", last_good))
    beyond = [s for s in targets if s > n]
    if beyond:
        result.problems.append(
            Problem(f"checkpoint at size {beyond[0]} covers entries that are no longer stored (only {n})", min(n, size))
        )
    return result

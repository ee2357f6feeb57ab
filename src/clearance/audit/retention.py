"""Retention: delete old entries while keeping the tree verifiable.

Pruning cuts the log at a checkpoint boundary P: the entries [0, P) are
deleted and the frontier of [0, P) (one hash per perfect subtree, at most 64)
is kept in the head row.  Before anything is deleted the kept hashes are
recomputed from the entry bodies and checked against the signed checkpoint
of size P, so a tampered prefix is never pruned away.  Inclusion and
consistency proofs for entries from P on keep working; older checkpoints
stay stored and their signatures stay checkable.

Stored prompts and completions (``audit.store_content``) are not part of the
tree: ``prune_content`` deletes those logged before the cut-off time outright.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, delete, func, select, update

from clearance.audit.merkle import Frontier, leaf_hash
from clearance.audit.tables import AuditCheckpointRow, AuditContentRow, AuditEntryRow, AuditHead

_head = AuditHead.__table__
_entries = AuditEntryRow.__table__
_checkpoints = AuditCheckpointRow.__table__
_content = AuditContentRow.__table__


class RetentionError(Exception):
    """The log cannot be pruned safely (its prefix does not match its checkpoint)."""


def prune(engine: Engine, before: datetime) -> int:
    """Delete the entries logged before ``before`` up to the newest checkpoint that covers only them.

    Returns the number of entries deleted.
    """
    with engine.begin() as conn:
        head = conn.execute(
            update(_head).where(_head.c.id == 1).values(size=_head.c.size)
            .returning(_head.c.size, _head.c.pruned_size, _head.c.pruned_frontier)
        ).one()
        pruned = int(head.pruned_size)
        first_kept = conn.execute(select(func.min(_entries.c.idx)).where(_entries.c.logged_at >= before)).scalar()
        limit = int(head.size) if first_kept is None else int(first_kept)
        cut = conn.execute(
            select(_checkpoints.c.size, _checkpoints.c.root)
            .where(_checkpoints.c.size <= limit, _checkpoints.c.size > pruned)
            .order_by(_checkpoints.c.size.desc()).limit(1)
        ).first()
        if cut is None:
            return 0
        target, root = int(cut.size), bytes(cut.root)
        frontier = Frontier.from_bytes(pruned, bytes(head.pruned_frontier))
        rows = conn.execute(
            select(_entries.c.idx, _entries.c.body).where(_entries.c.idx >= pruned, _entries.c.idx < target)
            .order_by(_entries.c.idx)
        )
        for idx, body in rows:
            if idx != frontier.size:
                raise RetentionError(f"entry {frontier.size} is missing; run `clearance audit verify`")
            frontier.append(leaf_hash(body.encode()))
        if frontier.size != target or frontier.root() != root:
            raise RetentionError(f"entries before {target} do not match their checkpoint; run `clearance audit verify`")
        conn.execute(
            update(_head).where(_head.c.id == 1).values(pruned_size=target, pruned_frontier=frontier.to_bytes())
        )
        conn.execute(delete(_entries).where(_entries.c.idx < target))
        return target - pruned


def prune_content(engine: Engine, before: datetime) -> int:
    """Delete stored prompts and completions logged before ``before``; returns how many records.

    Content is outside the Merkle tree, so it is deleted on its own, whether
    or not the entries it belongs to are pruned.
    """
    with engine.begin() as conn:
        return int(conn.execute(delete(_content).where(_content.c.logged_at < before)).rowcount or 0)

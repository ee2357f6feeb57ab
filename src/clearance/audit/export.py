"""Inclusion proofs and offline bundles: ``clearance audit prove`` and ``export``.

A bundle is one JSON document an auditor checks without access to the
database (``standalone_verify.py``): the newest checkpoint (a signed note),
older checkpoints with consistency proofs to it, and the exported entries,
each with its canonical body and its inclusion proof against the newest
checkpoint.  Hashes are base64.  Every proof is checked before it is written.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from clearance.audit.checkpoint import NoteVerifier, parse_checkpoint
from clearance.audit.merkle import (
    Frontier,
    ProofError,
    Tree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from clearance.audit.tables import AuditCheckpointRow, AuditEntryRow, AuditHead
from clearance.audit.verify import load_checkpoints, read_checkpoint_text

BUNDLE_FORMAT = "clearance-audit-bundle/1"

_head = AuditHead.__table__
_entries = AuditEntryRow.__table__
_checkpoints = AuditCheckpointRow.__table__


class ExportError(Exception):
    """A proof or bundle cannot be produced (no checkpoint, pruned entry, tampered store)."""


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def load_tree(engine: Engine, size: int) -> Tree:
    """The tree of the first ``size`` entries, from stored leaf hashes and pruned subtree hashes."""
    with engine.connect() as conn:
        head = conn.execute(select(_head.c.pruned_size, _head.c.pruned_frontier).where(_head.c.id == 1)).one()
        pruned = int(head.pruned_size)
        if size < pruned:
            raise ExportError(f"the tree of size {size} reaches into pruned entries (below {pruned})")
        leaves = [
            bytes(h)
            for h in conn.execute(
                select(_entries.c.leaf_hash).where(_entries.c.idx >= pruned, _entries.c.idx < size).order_by(_entries.c.idx)
            ).scalars()
        ]
    if len(leaves) != size - pruned:
        raise ExportError(f"expected {size - pruned} stored entries below {size}, found {len(leaves)}: run `clearance audit verify`")
    prefix = Frontier.from_bytes(pruned, bytes(head.pruned_frontier)) if pruned else None
    return Tree(leaves, offset=pruned, prefix=prefix)


def latest_checkpoint(engine: Engine, verifier: NoteVerifier | None) -> tuple[str, int, bytes]:
    """The newest checkpoint note with its size and root (signature checked when possible)."""
    with engine.connect() as conn:
        note = conn.execute(select(_checkpoints.c.note).order_by(_checkpoints.c.size.desc()).limit(1)).scalar()
    if note is None:
        raise ExportError("the log has no checkpoint yet: run `clearance audit checkpoint`")
    cp = parse_checkpoint(read_checkpoint_text(note, verifier))
    return note, cp.size, cp.root


def _entry_body(engine: Engine, index: int) -> str:
    with engine.connect() as conn:
        body = conn.execute(select(_entries.c.body).where(_entries.c.idx == index)).scalar()
    if body is None:
        raise ExportError(f"entry {index} is not stored (never written, or pruned)")
    return body


def prove(engine: Engine, index: int, verifier: NoteVerifier | None = None) -> dict[str, Any]:
    """The inclusion proof of entry ``index`` against the newest checkpoint."""
    note, size, root = latest_checkpoint(engine, verifier)
    if not 0 <= index < size:
        raise ExportError(f"entry {index} is not covered by the newest checkpoint (size {size})")
    body = _entry_body(engine, index)
    tree = load_tree(engine, size)
    leaf = leaf_hash(body.encode())
    proof = inclusion_proof(index, size, tree)
    verify_inclusion(leaf, index, size, proof, root)
    return {
        "index": index,
        "tree_size": size,
        "root": _b64(root),
        "leaf_hash": _b64(leaf),
        "proof": [_b64(h) for h in proof],
        "entry": body,
        "checkpoint": note,
    }


def export_bundle(
    engine: Engine, since: datetime | None, verifier: NoteVerifier | None, verifier_key: str | None
) -> dict[str, Any]:
    """A self-checking bundle of the entries logged at or after ``since``."""
    note, size, root = latest_checkpoint(engine, verifier)
    tree = load_tree(engine, size)
    if tree.root() != root:
        raise ExportError("stored entries do not match the newest checkpoint: run `clearance audit verify`")
    query = select(_entries.c.idx, _entries.c.body).where(_entries.c.idx < size).order_by(_entries.c.idx)
    if since is not None:
        query = query.where(_entries.c.logged_at >= since)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    entries = []
    for idx, body in rows:
        proof = inclusion_proof(idx, size, tree)
        verify_inclusion(leaf_hash(body.encode()), idx, size, proof, root)
        entries.append({"index": idx, "entry": body, "proof": [_b64(h) for h in proof]})
    first = entries[0]["index"] if entries else size
    older = []
    for cp in load_checkpoints(engine):
        # Older checkpoints that cover at least one exported entry.
        if cp.size <= first or cp.size >= size:
            continue
        old = parse_checkpoint(read_checkpoint_text(cp.note, verifier))
        try:
            proof = consistency_proof(old.size, size, tree)
        except ProofError:  # reaches into pruned entries
            continue
        verify_consistency(old.size, size, proof, old.root, root)
        older.append({"checkpoint": cp.note, "consistency": [_b64(h) for h in proof]})
    return {
        "format": BUNDLE_FORMAT,
        "verifier_key": verifier_key,
        "checkpoint": note,
        "older_checkpoints": older,
        "entries": entries,
    }

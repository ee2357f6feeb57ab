"""Tables of the audit log: its head, its entries and its checkpoints.

``audit_head`` is a single row, the sequencer: every batch of appends locks
it (an UPDATE as the transaction's first statement), takes the next indices,
extends the tree's frontier and commits together with the entries.  So all
replicas sharing a database append into one total order and the stored
frontier always matches the committed entries.  ``pruned_size`` and
``pruned_frontier`` keep the perfect-subtree hashes of entries removed by
retention, so the remaining tree stays provable.  ``audit_content`` holds the
encrypted prompts and completions when ``audit.store_content`` is on; it is
outside the hashed entries (see ``clearance.audit.content``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from clearance.store.base import Base


class AuditHead(Base):
    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    frontier: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    pruned_size: Mapped[int] = mapped_column(BigInteger, default=0)
    pruned_frontier: Mapped[bytes] = mapped_column(LargeBinary, default=b"")


class AuditEntryRow(Base):
    __tablename__ = "audit_entries"
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # The canonical JSON of the entry; its leaf hash is SHA-256(0x00 || body as UTF-8).
    body: Mapped[str] = mapped_column(Text)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    logged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class AuditCheckpointRow(Base):
    __tablename__ = "audit_checkpoints"
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    # The signed note (or the bare checkpoint text when no key is configured).
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditContentRow(Base):
    __tablename__ = "audit_content"
    # The entry whose digest this record matches; request ids come from clients and need not be unique.
    entry_idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    part: Mapped[str] = mapped_column(String(16), primary_key=True)  # "prompt" | "completion"
    request_id: Mapped[str] = mapped_column(Text, index=True)
    key_id: Mapped[str] = mapped_column(String(16))
    nonce: Mapped[bytes] = mapped_column(LargeBinary(12))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    logged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)

"""Read stored prompts and completions back: ``clearance audit show-content``.

Each encrypted record names the entry it belongs to.  Before anything is
shown, the entry is read from the log and checked against its leaf hash, the
record is decrypted with the request id and the digest taken from that
entry (so ciphertext moved from another entry fails), and the plaintext's
SHA-256 is compared with the entry's digest.  Any mismatch refuses the whole
request with ``ContentError``; nothing unchecked is printed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select

from clearance.audit.content import PARTS, ContentCipher, ContentError, prompt_messages
from clearance.audit.merkle import leaf_hash
from clearance.audit.tables import AuditContentRow, AuditEntryRow

_content = AuditContentRow.__table__
_entries = AuditEntryRow.__table__


@dataclass(frozen=True)
class OpenedContent:
    """One decrypted and checked prompt or completion."""

    entry_index: int
    entry_kind: str
    part: str
    sha256: str
    plaintext: bytes

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"entry": self.entry_index, "entry_kind": self.entry_kind, "part": self.part,
                               "sha256": self.sha256}
        messages = prompt_messages(self.plaintext) if self.part == "prompt" else None
        if messages is not None:
            out["messages"] = messages
        else:
            out["text"] = self.plaintext.decode(errors="replace")
        return out


def _entry(engine: Engine, index: int) -> dict[str, Any]:
    """The entry at ``index``, parsed, after checking its body against its leaf hash."""
    with engine.connect() as conn:
        row = conn.execute(select(_entries.c.body, _entries.c.leaf_hash).where(_entries.c.idx == index)).first()
    if row is None:
        raise ContentError(f"entry {index} is no longer in the log (pruned or deleted); its content cannot be checked")
    if leaf_hash(row.body.encode()) != bytes(row.leaf_hash):
        raise ContentError(f"entry {index} was modified (it does not match its leaf hash); run `clearance audit verify`")
    try:
        data = json.loads(row.body)
    except ValueError:
        raise ContentError(f"entry {index} is not valid JSON") from None
    if not isinstance(data, dict):
        raise ContentError(f"entry {index} is not a JSON object")
    return data


def show_content(engine: Engine, cipher: ContentCipher, request_id: str) -> list[OpenedContent]:
    """Every stored prompt and completion of ``request_id``, decrypted and checked against the log."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(_content.c.entry_idx, _content.c.part, _content.c.key_id, _content.c.nonce, _content.c.ciphertext)
            .where(_content.c.request_id == request_id)
            .order_by(_content.c.entry_idx, _content.c.part.desc())  # the prompt before the completion
        ).all()
    if not rows:
        raise ContentError(
            f"no stored content for request {request_id!r} (audit.store_content was off, "
            "the request is unknown, or its content was pruned)"
        )
    opened = []
    for row in rows:
        index, part = int(row.entry_idx), row.part
        if part not in PARTS:
            raise ContentError(f"the content record of entry {index} has an unknown part {part!r}")
        entry = _entry(engine, index)
        if entry.get("request_id") != request_id:
            raise ContentError(
                f"the stored {part} filed under request {request_id!r} points at entry {index}, "
                "which is another request's: the content table was edited"
            )
        digest = entry.get(f"{part}_sha256")
        if not isinstance(digest, str) or not digest:
            raise ContentError(f"entry {index} has no {part}_sha256, so its stored {part} cannot be checked")
        if row.key_id != cipher.key_id:
            raise ContentError(
                f"the {part} of entry {index} was encrypted with key {row.key_id}, "
                f"not the configured content key ({cipher.key_id})"
            )
        plaintext = cipher.open(request_id, part, digest, bytes(row.nonce), bytes(row.ciphertext))
        opened.append(OpenedContent(index, str(entry.get("kind", "")), part, digest, plaintext))
    return opened

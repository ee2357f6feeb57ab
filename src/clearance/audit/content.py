"""Encrypted prompts and completions: the optional ``audit.store_content``.

By default the audit log keeps only the SHA-256 digests of a request's
prompt and completion.  With ``store_content: true`` the texts themselves are
kept too, encrypted with AES-256-GCM under a 32-byte key that the operator
supplies (a file or an environment variable, base64; ``clearance audit
content-keygen`` makes one).

What is encrypted is exactly what the entry's digest was taken over, so a
decrypted text can be checked against the hashed entry:

- the prompt: ``role 0x00 content 0x00`` for every message, in order (the
  preimage of ``prompt_sha256``);
- the completion: its UTF-8 text (the preimage of ``completion_sha256``).

Every record has a fresh random 96-bit nonce.  The associated data binds the
ciphertext to the entry: the scheme name, the request id, which part it is
and the part's SHA-256 as written in the hashed entry.  Ciphertext moved to
another entry (another request id or another digest) fails to decrypt.

The ciphertext lives in its own table (``audit_content``), outside the
hashed entries, so the Merkle log is the same whether content is stored or
not and retention can delete content on its own schedule.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from clearance.types import AuditEntry, Message

if TYPE_CHECKING:
    from clearance.config import Config

SCHEME = "clearance-audit-content/1"
KEY_BYTES = 32
NONCE_BYTES = 12
PARTS = ("prompt", "completion")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ContentKeyError(Exception):
    """The content key is not configured, cannot be read or is not a base64 32-byte key."""


class ContentError(Exception):
    """Stored content cannot be decrypted or does not match its audit entry."""


# -- keys -----------------------------------------------------------------------


def generate_content_key() -> str:
    """A fresh random content key, base64 (44 characters)."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def parse_content_key(text: str, where: str) -> bytes:
    """The 32 key bytes of a base64 key read from ``where`` (named in errors; the key never is)."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ContentKeyError(f"the audit content key in {where} is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise ContentKeyError(
            f"the audit content key in {where} is {len(key)} bytes; it must be {KEY_BYTES} "
            "(make one with `clearance audit content-keygen`)"
        )
    return key


def load_content_key(config: Config) -> bytes:
    """The content key named by ``audit.content_key_env`` or ``audit.content_key_file``."""
    audit = config.audit
    if audit.content_key_env and audit.content_key_file:
        raise ContentKeyError("set only one of audit.content_key_env and audit.content_key_file")
    if audit.content_key_env:
        if not _ENV_NAME.match(audit.content_key_env):
            raise ContentKeyError(
                "audit.content_key_env must be the name of an environment variable holding the key, "
                "not the key itself (it is not repeated here)"
            )
        value = os.environ.get(audit.content_key_env, "")
        if not value.strip():
            raise ContentKeyError(
                f"audit.content_key_env names ${audit.content_key_env}, which is not set "
                "(make a key with `clearance audit content-keygen`)"
            )
        return parse_content_key(value, f"${audit.content_key_env}")
    if audit.content_key_file:
        path = config.resolve(audit.content_key_file)
        try:
            value = path.read_text()
        except FileNotFoundError:
            raise ContentKeyError(
                f"the audit content key file {path} does not exist "
                "(make one with `clearance audit content-keygen --config ...`)"
            ) from None
        except (OSError, UnicodeDecodeError) as e:
            raise ContentKeyError(f"cannot read the audit content key file {path}: {getattr(e, 'strerror', None) or e}") from None
        return parse_content_key(value, str(path))
    raise ContentKeyError("no audit content key configured: set audit.content_key_env or audit.content_key_file")


def write_content_key(path: Path, overwrite: bool = False) -> None:
    """Write a fresh key to ``path`` with mode 0600; refuses to replace a key unless ``overwrite``."""
    if path.exists() and not overwrite:
        raise ContentKeyError(f"{path} already exists; give --force to replace it (content encrypted with it is lost)")
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(generate_content_key() + "\n")
    os.chmod(path, 0o600)


# -- what is encrypted ----------------------------------------------------------


def prompt_bytes(messages: Iterable[Message]) -> bytes:
    """The prompt as its digest sees it: ``role 0x00 content 0x00`` per message (SHA-256 of it is ``prompt_sha256``)."""
    return b"".join(m.role.encode() + b"\x00" + m.content.encode() + b"\x00" for m in messages)


def prompt_messages(data: bytes) -> list[dict[str, str]] | None:
    """The messages back from ``prompt_bytes``; None when a content held a 0x00 byte and cannot be split."""
    fields = data.split(b"\x00")
    if fields[-1] != b"" or len(fields) % 2 != 1:
        return None
    try:
        return [{"role": fields[i].decode(), "content": fields[i + 1].decode()} for i in range(0, len(fields) - 1, 2)]
    except UnicodeDecodeError:
        return None


def associated_data(request_id: str, part: str, sha256_hex: str) -> bytes:
    """What a record's ciphertext is bound to: scheme, request id, part and the digest in the hashed entry."""
    return orjson.dumps([SCHEME, request_id, part, sha256_hex])


def key_id(key: bytes) -> str:
    """A short public name of a key (8 hex digits), stored with each record to recognise the key later."""
    return hashlib.sha256(b"clearance audit content key\x00" + key).hexdigest()[:8]


# -- sealing and opening ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SealedPart:
    """One encrypted prompt or completion, ready to be stored next to its entry."""

    part: str
    request_id: str
    key_id: str
    nonce: bytes
    ciphertext: bytes


class ContentCipher:
    """AES-256-GCM under the content key, with the associated data above."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ContentKeyError(f"the audit content key must be {KEY_BYTES} bytes")
        self._aead = AESGCM(key)
        self.key_id = key_id(key)

    def seal(self, request_id: str, part: str, sha256_hex: str, plaintext: bytes) -> SealedPart:
        """Encrypt ``plaintext`` (whose SHA-256 is ``sha256_hex``) under a fresh random nonce."""
        nonce = os.urandom(NONCE_BYTES)
        ct = self._aead.encrypt(nonce, plaintext, associated_data(request_id, part, sha256_hex))
        return SealedPart(part, request_id, self.key_id, nonce, ct)

    def open(self, request_id: str, part: str, sha256_hex: str, nonce: bytes, ciphertext: bytes) -> bytes:
        """Decrypt a record for the entry with ``request_id`` and digest ``sha256_hex``, and check the digest."""
        try:
            plaintext = self._aead.decrypt(nonce, ciphertext, associated_data(request_id, part, sha256_hex))
        except InvalidTag:
            raise ContentError(
                f"the stored {part} does not belong to this entry or was modified (it does not decrypt "
                f"for request {request_id!r} and the entry's digest)"
            ) from None
        if hashlib.sha256(plaintext).hexdigest() != sha256_hex:
            raise ContentError(f"the stored {part} does not match the entry's {part}_sha256")
        return plaintext

    def seal_entry(self, entry: AuditEntry, prompt: Sequence[Message] | None, completion: str | None) -> list[SealedPart]:
        """The encrypted prompt and/or completion of ``entry`` (a part is kept only when given and digested).

        Raises ``ContentError`` when a text does not hash to the entry's digest,
        so content that could never be checked is not stored.
        """
        parts: list[SealedPart] = []
        if prompt is not None and entry.prompt_sha256:
            parts.append(self._seal_checked(entry, "prompt", entry.prompt_sha256, prompt_bytes(prompt)))
        if completion is not None and entry.completion_sha256:
            parts.append(self._seal_checked(entry, "completion", entry.completion_sha256, completion.encode()))
        return parts

    def _seal_checked(self, entry: AuditEntry, part: str, sha256_hex: str, plaintext: bytes) -> SealedPart:
        if hashlib.sha256(plaintext).hexdigest() != sha256_hex:
            raise ContentError(f"the {part} given for request {entry.request_id!r} does not match its entry's digest")
        return self.seal(entry.request_id, part, sha256_hex, plaintext)


def cipher_from_config(config: Config) -> ContentCipher | None:
    """The cipher for storing content, or None when ``audit.store_content`` is off.

    Raises ``ContentKeyError`` when content is to be stored but the key is
    missing or invalid: the gateway must not start and silently store nothing.
    """
    if not config.audit.store_content:
        return None
    return ContentCipher(load_content_key(config))

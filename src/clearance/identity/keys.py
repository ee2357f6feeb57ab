"""API key format, generation and hashing.

A key is ``clr_<key id>_<secret>``: the id is public (it names the key in
lists, logs and audit entries), the secret is 32 random bytes.  Only the
SHA-256 of the whole key is stored; the key itself is shown once.
"""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "clr_"


def new_key() -> tuple[str, str]:
    """A fresh ``(key_id, key)`` pair."""
    key_id = "k" + secrets.token_hex(6)
    return key_id, f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def redact(key: str) -> str:
    """What may be logged of a presented key: its public id, never the secret."""
    if key.startswith(PREFIX):
        parts = key.split("_")
        if len(parts) >= 3:
            return f"{PREFIX}{parts[1]}_…"
    return "…"

"""A bounded cache of the built-in guard's scores, keyed by a digest of each text.

A chat client sends the whole conversation with every turn, and an
application sends the same system prompt with every request, so most of what
the guard is asked to score it has scored before: a 20-turn conversation with
a system prompt is about 40 texts, of which one or two are new.  Scores are a
pure function of the text and the model, so a cached score is exactly the
score that would be computed again.

Keys are keyed BLAKE2b digests (128 bits, a random key per process), not the
texts themselves: the cache holds no prompt text, and a text that merely
collides with another in a weaker hash cannot borrow its score.  The least
recently used entries are dropped beyond ``max_entries``; ``max_entries=0``
turns the cache off.  Safe to share between threads.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class ScoreCache(Generic[V]):
    """``get_or_compute(text, compute)``: the value for ``text``, computed at most once while it is kept."""

    def __init__(self, max_entries: int) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be >= 0")
        self.max_entries = max_entries
        self._key = os.urandom(32)
        self._entries: OrderedDict[bytes, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def digest(self, text: str, kind: bytes = b"") -> bytes:
        h = hashlib.blake2b(kind, digest_size=16, key=self._key, person=b"clearance-guard")
        h.update(b"\x00")
        h.update(text.encode("utf-8", "surrogatepass"))
        return h.digest()

    def get_or_compute(self, text: str, compute: Callable[[str], V], kind: bytes = b"") -> V:
        """``kind`` separates values computed differently from the same text (say, a text
        scored as one message and the same text as a joined conversation)."""
        if not self.max_entries:
            return compute(text)
        key = self.digest(text, kind)
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return value
            self.misses += 1
        value = compute(text)  # outside the lock: two threads may both compute a new text, same result
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._entries)

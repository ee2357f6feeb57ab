"""Hashed word and character n-gram features, computed with numpy only.

A text is normalised (lower case, whitespace runs collapsed), turned into an
array of code points with ASCII digits folded to ``0``, and every character 3-, 4-
and 5-gram and every word 1- and 2-gram is hashed into ``2**bits`` buckets
with a position-independent polynomial hash.  The hash is stable across
processes and platforms (no use of Python's randomised ``hash``), so weights
trained once can be shipped.

Features are binary (each bucket counted once per text, at its first
occurrence) and divided by the square root of the number of n-grams of that
kind, so a linear score is ``sum(w[char_idx]) / sqrt(nc) +
sum(w[word_idx]) / sqrt(nw)``; ``Grams`` keeps each n-gram's start position
so that the scores of many windows and paragraphs of one long text cost one
cumulative sum.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import numpy as np

CHAR_NS = (3, 4, 5)
_MOD = 1 << 64
_P = 1_000_003
_P_INV = pow(_P, -1, _MOD)
_MIX = np.uint64(0x9E3779B97F4A7C15)
_WORD_SALT = np.uint64(0x5851F42D4C957F2D)
_BIGRAM_MUL = np.uint64(0x2545F4914F6CDD1D)

# ASCII letters and digits are word characters; so is anything beyond ASCII.
_WORD_TABLE = np.zeros(128, dtype=bool)
for _ch in "abcdefghijklmnopqrstuvwxyz0123456789_":
    _WORD_TABLE[ord(_ch)] = True


class _Powers:
    """Cached powers of P and P^-1 modulo 2**64, grown on demand."""

    def __init__(self) -> None:
        self.pow = np.ones(1, dtype=np.uint64)
        self.inv = np.ones(1, dtype=np.uint64)
        self._grow(8192)

    def _grow(self, n: int) -> None:
        p = np.full(n, _P, dtype=np.uint64)
        p[0] = 1
        q = np.full(n, _P_INV, dtype=np.uint64)
        q[0] = 1
        with np.errstate(over="ignore"):
            pw = np.cumprod(p, dtype=np.uint64)
            inv = np.cumprod(q, dtype=np.uint64)
        self.inv = inv  # assign inv first: readers check len(pow)
        self.pow = pw

    def ensure(self, n: int) -> None:
        if n > len(self.pow):
            self._grow(max(n, 2 * len(self.pow)))


_POWERS = _Powers()


def normalise(text: str) -> str:
    """The form in which a text is featurised: lower case, whitespace runs
    collapsed to one space.  (Digits are folded to ``0`` by ``grams``, on
    code points, which is much faster than ``str.translate`` on non-ASCII text.)"""
    return " ".join(text.lower().split())


@dataclass(frozen=True, slots=True)
class Grams:
    """Hashed n-grams of one normalised text and where each one starts."""

    char_idx: np.ndarray  # bucket of each character n-gram
    char_pos: np.ndarray  # its start position in the text
    word_idx: np.ndarray  # bucket of each word 1- and 2-gram
    word_pos: np.ndarray  # start position of its first word
    length: int


def _bucket(h: np.ndarray, salt: int, bits: int) -> np.ndarray:
    x = (h + np.uint64(salt)) * _MIX
    x ^= x >> np.uint64(29)
    x = x * _MIX
    return (x >> np.uint64(64 - bits)).astype(np.int64)


def grams(norm: str, bits: int) -> Grams:
    """Hash every n-gram of an already normalised text into ``2**bits`` buckets."""
    n = len(norm)
    if n == 0:
        e = np.zeros(0, dtype=np.int64)
        return Grams(e, e, e, e, 0)
    c = np.frombuffer(norm.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    c[(c >= 49) & (c <= 57)] = 48  # ASCII digits 1-9 fold to 0
    _POWERS.ensure(n + 1)
    pw, inv = _POWERS.pow, _POWERS.inv
    with np.errstate(over="ignore"):
        g = np.zeros(n + 1, dtype=np.uint64)
        np.cumsum(c * inv[:n], dtype=np.uint64, out=g[1:])
        cidx, cpos = [], []
        for k in CHAR_NS:
            if n >= k:
                h = (g[k:] - g[: n + 1 - k]) * pw[: n + 1 - k]
                cidx.append(_bucket(h, k, bits))
                cpos.append(np.arange(n + 1 - k, dtype=np.int64))
        isword = np.ones(n, dtype=bool)
        small = c < 128
        isword[small] = _WORD_TABLE[c[small].astype(np.intp)]
        edges = np.diff(np.concatenate(([False], isword, [False])).astype(np.int8))
        starts = np.flatnonzero(edges == 1)
        ends = np.flatnonzero(edges == -1)
        wh = (g[ends] - g[starts]) * pw[starts]
        widx = [_bucket(wh, int(_WORD_SALT), bits)]
        wpos = [starts]
        if len(wh) > 1:
            bh = wh[:-1] * _BIGRAM_MUL + wh[1:]
            widx.append(_bucket(bh, int(_WORD_SALT) + 7, bits))
            wpos.append(starts[:-1])
    e = np.zeros(0, dtype=np.int64)
    ci, cp = (np.concatenate(cidx), np.concatenate(cpos)) if cidx else (e, e)
    wi, wp = _first(np.concatenate(widx), np.concatenate(wpos), bits)
    ci, cp = _first(ci, cp, bits)
    return Grams(ci, cp, wi, wp, n)


_SCRATCH = threading.local()


def _first(idx: np.ndarray, pos: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep each bucket once, at its first occurrence: features are binary, so
    repeating a passage does not inflate its score.

    Linear time: write positions into a per-thread bucket table in reverse
    order (the earliest write lands last) and keep the n-grams whose own
    position survived.  Only the touched cells are read, so the table is
    never cleared.
    """
    if len(idx) == 0:
        return idx, pos
    table = getattr(_SCRATCH, "table", None)
    if table is None or len(table) != 1 << bits:
        table = _SCRATCH.table = np.empty(1 << bits, dtype=np.int64)
    table[idx[::-1]] = pos[::-1]
    keep = table[idx] == pos
    return idx[keep], pos[keep]


def windows(length: int, sizes: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Start and end offsets of the windows that screen a text of ``length`` chars.

    ``sizes`` holds ``(window, stride)`` pairs; a text no longer than a window
    is one window at that scale.  Every character is covered at every scale.
    """
    out = [(0, length)]
    for size, stride in sizes:
        if length <= size:
            continue
        starts = list(range(0, length - size, stride)) + [length - size]
        out.extend((s, s + size) for s in starts)
    return np.array(sorted(set(out)), dtype=np.int64)



# Paragraphs: a conversation's parts are often glued together (an extraction
# request before a harmful one, a persona after a document).  A linear score
# over the whole text dilutes a short attack among the other part's n-grams,
# so each paragraph (text between blank lines) is also scored on its own.
# Paragraphs shorter than PARAGRAPH_MIN_CHARS are merged into the next one.
PARAGRAPH_MIN_CHARS = 20
_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*")


def _paragraph_bounds(text: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Start and end offsets in the normalised text of every non-empty paragraph.

    Each paragraph break is replaced by a NUL token, the text is normalised
    once, and the tokens' positions (each adds two characters: itself and a
    space) give the boundaries, so the cost is a few passes in C whatever
    the number of paragraphs.  ``None`` when the text already holds a NUL.
    """
    if "\0" in text:
        return None
    marked = " ".join(_PARAGRAPH_BREAK.sub(" \0 ", text.lower()).split())
    codes = np.frombuffer(marked.encode("utf-32-le"), dtype=np.uint32)
    pos = np.flatnonzero(codes == 0)
    shift = pos - 2 * np.arange(len(pos))  # where each break falls in the normalised text
    norm_length = len(codes) - 2 * len(pos)
    starts = np.concatenate(([0], shift))
    ends = np.concatenate((shift - 1, [norm_length]))
    keep = ends > starts
    return starts[keep], ends[keep]


def paragraphs(text: str, norm_length: int, min_chars: int = PARAGRAPH_MIN_CHARS) -> list[tuple[int, int]]:
    """Start and end offsets, in the normalised text, of each paragraph of ``text``.

    Paragraphs are cut at whitespace, so the normalised paragraphs joined by
    single spaces are exactly the normalised text (``norm_length`` long).
    Returns nothing when the text is a single paragraph: the whole text is
    scored anyway.
    """
    if "\n" not in text:
        return []
    bounds = _paragraph_bounds(text)
    if bounds is None:
        return _paragraphs_slow(text, norm_length, min_chars)
    spans: list[tuple[int, int]] = []
    start = -1
    for s, e in zip(bounds[0].tolist(), bounds[1].tolist()):
        if start < 0:
            start = s
        if e - start >= min_chars:
            spans.append((start, e))
            start = -1
    if start >= 0:  # a short tail joins the paragraph before it
        end = int(bounds[1][-1])
        spans[-1:] = [(spans[-1][0] if spans else start, end)]
    if len(spans) < 2 or spans[-1][1] != norm_length:
        return []
    return spans


def _paragraphs_slow(text: str, norm_length: int, min_chars: int) -> list[tuple[int, int]]:
    """``paragraphs`` one piece at a time (for texts that hold a NUL)."""
    spans: list[tuple[int, int]] = []
    start = off = 0
    for piece in _PARAGRAPH_BREAK.split(text):
        piece_len = len(normalise(piece))
        if not piece_len:
            continue
        end = off + piece_len
        off = end + 1
        if end - start >= min_chars:
            spans.append((start, end))
            start = off
    if start < off - 1:  # a short tail joins the paragraph before it
        if spans:
            spans[-1] = (spans[-1][0], off - 1)
        else:
            spans.append((start, off - 1))
    if len(spans) < 2 or spans[-1][1] != norm_length:
        return []
    return spans

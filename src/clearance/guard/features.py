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
cumulative sum.  ``first_buckets`` computes the same buckets for a text scored as
one window (most prompts) in far fewer numpy calls.

The numpy functions here define the features.  When the C extension
``_ngrams`` is built (it is compiled on install; ``ACCELERATED`` says
whether it loaded), ``grams`` and ``first_buckets`` call it instead: the same
buckets, positions and order (tests compare the two over the guard's corpus),
about fifteen times faster for a short prompt and three times for a long one.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import numpy as np

try:
    from clearance.guard import _ngrams
except ImportError:  # not compiled: the numpy implementation below gives the same buckets
    _ngrams = None

# Whether the C implementation of ``grams`` and ``first_buckets`` is in use.
ACCELERATED = _ngrams is not None

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
    if _ngrams is not None:
        ci, cp, wi, wp = _ngrams.grams(norm, bits)
        return Grams(np.frombuffer(ci, np.int64), np.frombuffer(cp, np.int64),
                     np.frombuffer(wi, np.int64), np.frombuffer(wp, np.int64), len(norm))
    return grams_numpy(norm, bits)


def grams_numpy(norm: str, bits: int) -> Grams:
    """``grams`` in numpy: the reference implementation, and the fallback without the C extension."""
    n = len(norm)
    if n == 0:
        e = np.zeros(0, dtype=np.int64)
        return Grams(e, e, e, e, 0)
    (ci, cp, _), (wi, wp, _) = all_grams(norm, bits)
    wi, wp = _first(wi, wp, bits)
    ci, cp = _first(ci, cp, bits)
    return Grams(ci, cp, wi, wp, n)


def all_grams(norm: str, bits: int) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]:
    """Every n-gram of a normalised text before de-duplication, as ``(bucket, start, length)``
    arrays: the character 3-, 4- and 5-grams, then the word 1- and 2-grams (a bigram's length
    runs from its first word's start to its second word's end).  ``grams`` keeps the first
    occurrence of each bucket; ``explain`` uses the lengths to show what each one was."""
    n = len(norm)
    e = np.zeros(0, dtype=np.int64)
    if n == 0:
        return (e, e, e), (e, e, e)
    c = np.frombuffer(norm.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    c[(c >= 49) & (c <= 57)] = 48  # ASCII digits 1-9 fold to 0
    _POWERS.ensure(n + 1)
    pw, inv = _POWERS.pow, _POWERS.inv
    with np.errstate(over="ignore"):
        g = np.zeros(n + 1, dtype=np.uint64)
        np.cumsum(c * inv[:n], dtype=np.uint64, out=g[1:])
        cidx, cpos, clen = [], [], []
        for k in CHAR_NS:
            if n >= k:
                h = (g[k:] - g[: n + 1 - k]) * pw[: n + 1 - k]
                cidx.append(_bucket(h, k, bits))
                cpos.append(np.arange(n + 1 - k, dtype=np.int64))
                clen.append(np.full(n + 1 - k, k, dtype=np.int64))
        isword = np.ones(n, dtype=bool)
        small = c < 128
        isword[small] = _WORD_TABLE[c[small].astype(np.intp)]
        edges = np.diff(np.concatenate(([False], isword, [False])).astype(np.int8))
        starts = np.flatnonzero(edges == 1)
        ends = np.flatnonzero(edges == -1)
        wh = (g[ends] - g[starts]) * pw[starts]
        widx = [_bucket(wh, int(_WORD_SALT), bits)]
        wpos = [starts]
        wlen = [ends - starts]
        if len(wh) > 1:
            bh = wh[:-1] * _BIGRAM_MUL + wh[1:]
            widx.append(_bucket(bh, int(_WORD_SALT) + 7, bits))
            wpos.append(starts[:-1])
            wlen.append(ends[1:] - starts[:-1])
    chars = (np.concatenate(cidx), np.concatenate(cpos), np.concatenate(clen)) if cidx else (e, e, e)
    return chars, (np.concatenate(widx), np.concatenate(wpos), np.concatenate(wlen))


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
    keep = first_mask(idx, pos, bits)
    return idx[keep], pos[keep]


def first_mask(idx: np.ndarray, pos: np.ndarray, bits: int) -> np.ndarray:
    """Which of the n-grams ``_first`` keeps (a boolean mask over ``idx``)."""
    table = getattr(_SCRATCH, "table", None)
    if table is None or len(table) != 1 << bits:
        # int32 positions (texts are capped far below 2**31 characters): half the memory traffic.
        table = _SCRATCH.table = np.empty(1 << bits, dtype=np.int32)
    table[idx[::-1]] = pos[::-1]
    return table[idx] == pos


# The same n-grams for a text scored as one window, in far fewer numpy calls.
# A character n-gram's hash is position independent: h = sum of c[i + t] * P^-t
# over its k characters (``grams`` computes it from prefix sums).  _TERMS[b, t]
# holds c * P^-t of ASCII byte b (digits folded) plus the salt's share, so the
# 3-, 4- and 5-grams of ASCII text are sums of shifted columns of one lookup.
_MAXK = max(CHAR_NS)
_FOLD_ASCII = np.arange(128, dtype=np.uint64)
_FOLD_ASCII[49:58] = 48  # ASCII digits 1-9 fold to 0
_WORD_ASCII = _WORD_TABLE.astype(np.int8)
_Q = np.array([pow(_P_INV, t, _MOD) for t in range(_MAXK)], dtype=np.uint64)
# Salt k is added once to the 3-gram and by increments of one with each further character.
assert CHAR_NS == tuple(range(CHAR_NS[0], _MAXK + 1))
_SALTS = np.array([CHAR_NS[0] if t == 0 else 1 if t >= CHAR_NS[0] else 0 for t in range(_MAXK)], dtype=np.uint64)
_TERMS = _FOLD_ASCII[:, None] * _Q[None, :] + _SALTS[None, :]
_NINE = np.uint64(9)
_DIGIT_ONE = np.uint64(49)
_SH29 = np.uint64(29)
_WORD_SALT_2 = _WORD_SALT + np.uint64(7)


def first_buckets(norm: str, bits: int) -> tuple[np.ndarray, int] | None:
    """The buckets ``grams`` keeps, for scoring a text as one window: ``(idx, nchar)``.

    ``idx`` is ``grams(norm, bits).char_idx`` followed by ``.word_idx``, and
    ``nchar`` is how many of them are character n-grams; ``None`` when the
    text has fewer than five characters or no word (the caller uses ``grams``).
    """
    if _ngrams is not None:
        got = _ngrams.window(norm, bits)
        return None if got is None else (np.frombuffer(got[0], np.int64), got[1])
    return first_buckets_numpy(norm, bits)


def first_buckets_numpy(norm: str, bits: int) -> tuple[np.ndarray, int] | None:
    """``first_buckets`` in numpy: the buckets ``grams`` keeps, for scoring a text as one window.

    ``idx`` is ``grams(norm, bits).char_idx`` followed by ``.word_idx``, in
    the same order, and ``nchar`` is how many of them are character n-grams.
    Positions are not kept (one window needs none), which lets every n-gram
    kind be hashed, bucketed and de-duplicated together: about forty numpy
    calls instead of seventy, which is most of the cost of a short text.
    ``None`` when the text has fewer than five characters or no word (the
    caller uses ``grams``).
    """
    n = len(norm)
    if n < _MAXK:
        return None
    if norm.isascii():
        # NUL on both sides: a non-word character for the word edges, and a zero before the text.
        raw = np.frombuffer(b"\0" + norm.encode("ascii") + b"\0", dtype=np.uint8)
        c = _FOLD_ASCII[raw[:-1]]  # c[0] == 0, c[1 + i] is the text's character i
        terms = _TERMS.take(raw[1:-1], axis=0)
        isword = _WORD_ASCII[raw]
    else:
        c = np.zeros(n + 1, dtype=np.uint64)
        c[1:] = np.frombuffer(norm.encode("utf-32-le"), dtype=np.uint32)
        c[(c - _DIGIT_ONE) < _NINE] = 48  # 1-9 (anything below 49 wraps around to a huge value)
        terms = c[1:, None] * _Q
        terms += _SALTS
        isword = np.zeros(n + 2, dtype=np.int8)
        isword[1:-1] = (c[1:] >= 128) | _WORD_TABLE[np.minimum(c[1:], 127).astype(np.intp)]
    edges = isword[1:] - isword[:-1]
    starts = (edges == 1).nonzero()[0]
    ends = (edges == -1).nonzero()[0]
    nw = len(starts)
    if nw == 0:
        return None
    # uint64 arithmetic wraps modulo 2**64 (numpy warns about overflow only for scalars).
    sizes = [n + 1 - k for k in CHAR_NS]
    nc = sum(sizes)
    h = np.empty(nc + 2 * nw - 1, dtype=np.uint64)
    pos = np.empty(len(h), dtype=np.int64)
    # Character n-grams, all of one size and then the next: each size adds a column to the one before.
    k0, size = CHAR_NS[0], sizes[0]
    prev = h[:size]
    np.add(terms[:size, 0], terms[1:size + 1, 1], out=prev)
    for t in range(2, k0):
        prev += terms[t:t + size, t]
    pos[:size] = _arange(size)
    off = size
    for k, size in zip(CHAR_NS[1:], sizes[1:]):
        part = h[off:off + size]
        np.add(prev[:size], terms[k - 1:, k - 1], out=part)
        pos[off:off + size] = _arange(size)
        prev, off = part, off + size
    # Words (maximal runs of word characters) from prefix sums, as ``grams`` does.
    _POWERS.ensure(n + 1)
    c[1:] *= _POWERS.inv[:n]
    g = np.add.accumulate(c)  # g[j] = sum of c_t * P^-t for t < j
    words = h[nc:nc + nw]
    np.subtract(g[ends], g[starts], out=words)
    words *= _POWERS.pow[starts]
    if nw > 1:
        bigrams = h[nc + nw:]
        np.multiply(words[:-1], _BIGRAM_MUL, out=bigrams)
        bigrams += words[1:]
        bigrams += _WORD_SALT_2
    words += _WORD_SALT
    pos[nc:nc + nw] = _arange(nw)  # word order stands in for the start position: same ties
    pos[nc + nw:] = _arange(nw - 1)
    h *= _MIX
    h ^= h >> _SH29
    h *= _MIX
    h >>= _shift(bits)
    idx = h.view(np.int64)
    idx[nc:] += 1 << bits  # word n-grams get keys of their own, above the character n-grams'
    # Keep each key at its first occurrence, as ``_first`` does for each kind.
    table = getattr(_SCRATCH, "table2", None)
    if table is None or len(table) != 2 << bits:
        table = _SCRATCH.table2 = np.empty(2 << bits, dtype=np.int32)
    table[idx[::-1]] = pos[::-1]
    keep = table[idx] == pos
    nchar = int(np.count_nonzero(keep[:nc]))
    kept = idx[keep]
    kept &= (1 << bits) - 1
    return kept, nchar


_SHIFTS: dict[int, np.uint64] = {}


def _shift(bits: int) -> np.uint64:
    shift = _SHIFTS.get(bits)
    if shift is None:
        shift = _SHIFTS[bits] = np.uint64(64 - bits)
    return shift


_ARANGE = np.arange(4096, dtype=np.int64)


def _arange(n: int) -> np.ndarray:
    return _ARANGE[:n] if n <= len(_ARANGE) else np.arange(n, dtype=np.int64)


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
_LINE_BREAK = re.compile(r"\n\s*")


def segments(text: str, norm_length: int) -> list[tuple[int, int]]:
    """The paragraphs of ``text`` and, when it has single line breaks too, its lines (short lines
    merged into the next, as short paragraphs are): an instruction planted as one line of a
    document, a code comment or a tool result is scored on its own, not diluted by the rest."""
    paras = paragraphs(text, norm_length)
    if "\n" not in text:
        return paras
    lines = paragraphs(text, norm_length, breaks=_LINE_BREAK)
    if not lines or lines == paras:
        return paras
    seen = set(paras)
    return paras + [s for s in lines if s not in seen]


def _paragraph_bounds(text: str, breaks: re.Pattern = _PARAGRAPH_BREAK) -> tuple[np.ndarray, np.ndarray] | None:
    """Start and end offsets in the normalised text of every non-empty paragraph.

    Each paragraph break is replaced by a NUL token, the text is normalised
    once, and the tokens' positions (each adds two characters: itself and a
    space) give the boundaries, so the cost is a few passes in C whatever
    the number of paragraphs.  ``None`` when the text already holds a NUL.
    """
    if "\0" in text:
        return None
    marked = " ".join(breaks.sub(" \0 ", text.lower()).split())
    codes = np.frombuffer(marked.encode("utf-32-le"), dtype=np.uint32)
    pos = np.flatnonzero(codes == 0)
    shift = pos - 2 * np.arange(len(pos))  # where each break falls in the normalised text
    norm_length = len(codes) - 2 * len(pos)
    starts = np.concatenate(([0], shift))
    ends = np.concatenate((shift - 1, [norm_length]))
    keep = ends > starts
    return starts[keep], ends[keep]


def paragraphs(text: str, norm_length: int, min_chars: int = PARAGRAPH_MIN_CHARS,
               breaks: re.Pattern = _PARAGRAPH_BREAK) -> list[tuple[int, int]]:
    """Start and end offsets, in the normalised text, of each paragraph of ``text``.

    Paragraphs are cut at whitespace, so the normalised paragraphs joined by
    single spaces are exactly the normalised text (``norm_length`` long).
    Returns nothing when the text is a single paragraph: the whole text is
    scored anyway.
    """
    if "\n" not in text:
        return []
    bounds = _paragraph_bounds(text, breaks)
    if bounds is None:
        return _paragraphs_slow(text, norm_length, min_chars, breaks)
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


def _paragraphs_slow(text: str, norm_length: int, min_chars: int,
                     breaks: re.Pattern = _PARAGRAPH_BREAK) -> list[tuple[int, int]]:
    """``paragraphs`` one piece at a time (for texts that hold a NUL)."""
    spans: list[tuple[int, int]] = []
    start = off = 0
    for piece in breaks.split(text):
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

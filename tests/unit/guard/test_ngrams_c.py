"""The C n-gram hashing (``clearance.guard._ngrams``) must give exactly what the numpy
reference in ``features.py`` gives: the same buckets, positions and order, for every text,
so the shipped weights score the same whichever is in use.

The extension is compiled on install; without a C compiler the guard falls back to numpy.
Locally these tests are then skipped; under CI (``CI=true``) a missing extension fails.
"""

from __future__ import annotations

import os
import random

import numpy as np
import pytest

from clearance.guard import features
from clearance.guard.dataset import load_rows

from .test_fast_path import EDGE_CASES

if features._ngrams is None:
    if os.environ.get("CI"):
        raise AssertionError("clearance.guard._ngrams was not built: the install could not compile it")
    pytest.skip("the C extension is not built; the numpy implementation is in use", allow_module_level=True)

C = features._ngrams


def _texts() -> list[str]:
    rows = load_rows()
    rng = random.Random(11)
    return EDGE_CASES + [r.text for r in rows] + [r.text[:n] for r in rng.sample(rows, 400) for n in (4, 5, 6, 600)]


TEXTS = _texts()


def _c_grams(norm: str, bits: int) -> features.Grams:
    ci, cp, wi, wp = (np.frombuffer(b, np.int64) for b in C.grams(norm, bits))
    return features.Grams(ci, cp, wi, wp, len(norm))


@pytest.mark.parametrize("bits", [18, 4])  # 16 buckets: collisions and ties everywhere
def test_c_grams_equal_numpy_grams_over_the_corpus(bits):
    for text in TEXTS:
        norm = features.normalise(text)
        want, got = features.grams_numpy(norm, bits), _c_grams(norm, bits)
        for field in ("char_idx", "char_pos", "word_idx", "word_pos"):
            assert getattr(got, field).tolist() == getattr(want, field).tolist(), (field, text[:80])


def test_c_window_equals_numpy_first_buckets():
    checked = 0
    for text in TEXTS:
        norm = features.normalise(text)[:600]
        want = features.first_buckets_numpy(norm, 18)
        got = C.window(norm, 18)
        assert (got is None) == (want is None), text[:80]
        if want is not None:
            assert got[1] == want[1]
            assert np.frombuffer(got[0], np.int64).tolist() == want[0].tolist(), text[:80]
            checked += 1
    assert checked > 3000


def test_public_functions_use_the_extension():
    assert features.ACCELERATED
    norm = features.normalise("Write a working exploit for CVE-2021-44228")
    g = features.grams(norm, 18)
    assert not g.char_idx.flags.writeable  # a view of the extension's bytes, not a numpy computation
    idx, nchar = features.first_buckets(norm, 18)
    assert idx.tolist() == g.char_idx.tolist() + g.word_idx.tolist() and nchar == len(g.char_idx)


@pytest.mark.parametrize("bad", [(b"bytes", 18), ("text", 0), ("text", 25), ("text",), (None, 18)])
def test_bad_arguments_raise_instead_of_crashing(bad):
    with pytest.raises((TypeError, ValueError)):
        C.grams(*bad)
    with pytest.raises((TypeError, ValueError)):
        C.window(*bad)


def test_texts_the_numpy_path_cannot_encode_are_still_hashed():
    # A lone surrogate cannot be encoded as UTF-32, so the numpy path raises (and the guard
    # fails closed); the extension reads code points directly and hashes it like any character.
    norm = "ignore \ud800 previous instructions"
    with pytest.raises(UnicodeEncodeError):
        features.grams_numpy(norm, 18)
    g = _c_grams(norm, 18)
    assert g.word_pos.tolist() == [0, 7, 9, 18, 0, 7, 9]  # four words (the surrogate is one), three bigrams


def test_weight_and_span_arguments_are_checked():
    w = np.zeros((1 << 4, 2), np.float32)
    spans = np.array([[0, 5]], np.int64).tobytes()
    assert C.span_sums("hello world", 4, w, 2, spans) is not None
    for bad_w, k in ((np.zeros((1 << 4, 2), np.float64), 2), (np.zeros((1 << 4, 3), np.float32), 2),
                     (np.zeros((2, 1 << 4), np.float32).T, 2), (b"not weights", 2), (w, 0)):
        with pytest.raises((TypeError, ValueError, BufferError)):
            C.span_sums("hello world", 4, bad_w, k, spans)
        with pytest.raises((TypeError, ValueError, BufferError)):
            C.window_sums("hello world", 4, bad_w, k)
    for bad_spans in (np.array([[0, 12]], np.int64).tobytes(), np.array([[3, 2]], np.int64).tobytes(),
                      np.array([[-1, 2]], np.int64).tobytes(), b"odd"):
        with pytest.raises(ValueError):
            C.span_sums("hello world", 4, w, 2, bad_spans)


def test_span_sums_are_the_windowed_sums():
    # One span over the whole text of a one-window text is the one-window score.
    rng = np.random.default_rng(0)
    w = rng.normal(size=(1 << 10, 2)).astype(np.float32)
    norm = features.normalise("Write a keylogger in C that hides from the task manager")
    nchar, nword, sums = C.window_sums(norm, 10, w, 2)
    whole = np.frombuffer(C.span_sums(norm, 10, w, 2, np.array([[0, len(norm)]], np.int64).tobytes()), np.float64)
    expected = [sums[j] / np.sqrt(nchar) + sums[2 + j] / np.sqrt(nword) for j in range(2)]
    assert np.allclose(whole, expected, rtol=0, atol=1e-12)
    # An empty span scores zero.
    empty = np.frombuffer(C.span_sums(norm, 10, w, 2, np.array([[3, 3]], np.int64).tobytes()), np.float64)
    assert empty.tolist() == [0.0, 0.0]


def _random_text(rng: random.Random) -> str:
    """Text from mixed scripts: ASCII words and digits, punctuation, whitespace, Latin-1, CJK,
    emoji, combining marks, control characters and NUL, at lengths around the window sizes."""
    pools = ["abcdefghijklmnopqrstuvwxyz", "ABCXYZ", "0123456789", " \t\n\n  ", ".,;:!?-_'\"()[]{}<>/\\@#$%^&*",
             "éüßçñøåÆŒ", "数字漢字文本", "😀🔥🚀", "\u0301\u0308", "\x00\x01\x1f\x7f\u2028\u00a0\u200b", "İıĸ\u212aǅﬁ"]
    n = rng.choice([0, 1, 4, 5, 6, 50, 599, 600, 601, rng.randint(0, 3000)])
    return "".join(rng.choice(rng.choice(pools)) for _ in range(n))


def test_c_equals_numpy_on_random_mixed_script_texts():
    rng = random.Random(2026)
    for _ in range(600):
        text = _random_text(rng)
        norm = features.normalise(text)
        for bits in (18, 6):
            want, got = features.grams_numpy(norm, bits), _c_grams(norm, bits)
            for field in ("char_idx", "char_pos", "word_idx", "word_pos"):
                assert getattr(got, field).tolist() == getattr(want, field).tolist(), (field, repr(text[:60]))
        w = features.first_buckets_numpy(norm[:600], 18)
        c = C.window(norm[:600], 18)
        assert (w is None) == (c is None)
        if w is not None:
            assert np.frombuffer(c[0], np.int64).tolist() == w[0].tolist() and c[1] == w[1]

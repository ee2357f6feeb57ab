"""The shipped linear classifier: weights in an ``.npz``, scoring with numpy.

``LinearModel`` holds one weight row per category over the hashed n-gram
buckets of ``features.py``.  Scoring a text computes its n-grams once,
gathers weights per character position and takes the maximum logit over
windows at several scales and over each paragraph, so long inputs are
screened in full and a short attack inside a long document, or glued to an
innocent-looking request, is not diluted away.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from clearance.guard import features

MODEL_DIR = Path(__file__).parent / "model"
WEIGHTS_FILE = "guard-linear.npz"
# (window, stride) in characters; the whole text is always one more window.
WINDOWS: tuple[tuple[int, int], ...] = ((4000, 2000), (600, 300))


@dataclass(frozen=True)
class LinearModel:
    """Weights ``w`` (categories x 2**bits), biases ``b`` and category names."""

    categories: tuple[str, ...]
    w: np.ndarray
    b: np.ndarray
    bits: int
    meta: dict

    @classmethod
    def load(cls, directory: Path = MODEL_DIR) -> "LinearModel":
        path = Path(directory) / WEIGHTS_FILE
        with np.load(path, allow_pickle=False) as z:
            w = z["w"].astype(np.float32)
            b = z["b"].astype(np.float64)
            cats = tuple(str(c) for c in z["categories"])
            bits = int(z["bits"])
            meta = json.loads(str(z["meta"]))
        if w.shape != (len(cats), 1 << bits) or b.shape != (len(cats),):
            raise ValueError(f"{path}: weight shapes do not match the categories")
        return cls(cats, w, b, bits, meta)

    def save(self, directory: Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / WEIGHTS_FILE
        with open(path, "wb") as fh:
            np.savez_compressed(
                fh, w=self.w.astype(np.float16), b=self.b, categories=np.array(self.categories),
                bits=np.array(self.bits), meta=np.array(json.dumps(self.meta, sort_keys=True)),
            )
        return path

    def logits(self, text: str, scope: str = "all") -> np.ndarray:
        """Maximum logit per category over all windows and paragraphs of ``text``.

        ``scope`` (``linear.LinearGuard``'s role-aware scoring of long system prompts):
        ``"all"`` reads every span; for a text longer than the smallest window,
        ``"local"`` reads only its smallest windows (``WINDOWS[-1]``), paragraphs and
        lines, not the text as a whole nor its larger windows, and ``"windows"`` only
        its smallest windows.  A shorter text is read as usual.
        Computed by the C extension when it is built (``features.ACCELERATED``),
        otherwise with numpy; both give the same numbers (tests/unit/guard).
        """
        norm = features.normalise(text)
        if not norm:
            return self.b.copy()
        n = len(norm)
        segs = features.segments(text, n)
        ext = features._ngrams
        if n <= WINDOWS[-1][0] and not segs:  # the whole text is the only window
            one = self._one_window_c(ext, norm) if ext is not None else self._one_window(norm)
            return one if one is not None else self._plain_sums(norm)
        if scope != "all" and n > WINDOWS[-1][0]:
            spans = self._local_spans(n, segs if scope == "local" else [])
        else:
            spans = self._spans(n, segs)
        if ext is not None:
            k = len(self.categories)
            sums = ext.span_sums(norm, self.bits, self._wt, k, spans)
            return np.frombuffer(sums, np.float64).reshape(k, len(spans)).max(axis=1) + self.b
        return self._span_logits(norm, spans)

    def _plain_sums(self, norm: str) -> np.ndarray:
        """One window's logits from ``features.grams`` (texts under five characters, or without a word)."""
        g = features.grams(norm, self.bits)
        total = self.b.copy()
        for idx in (g.char_idx, g.word_idx):
            if len(idx):
                total += self.w[:, idx].sum(axis=1, dtype=np.float64) / np.sqrt(len(idx))
        return total

    def _span_logits(self, norm: str, spans: np.ndarray) -> np.ndarray:
        """The maximum over ``spans`` of each span's logits, with numpy."""
        return np.max(self.span_sums(norm, spans), axis=1) + self.b

    def span_sums(self, norm: str, spans: np.ndarray) -> np.ndarray:
        """Each span's logits without the bias, (categories, spans), with numpy: per-position
        cumulative sums of the n-grams' weights and counts, one pass per kind."""
        g = features.grams(norm, self.bits)
        n, k = len(norm), len(self.categories)
        s, e = spans[:, 0], spans[:, 1]
        total = np.zeros((k, len(spans)))
        for idx, pos in ((g.char_idx, g.char_pos), (g.word_idx, g.word_pos)):
            if not len(idx):
                continue
            wg = self.w.take(idx, axis=1)  # several times faster than self.w[:, idx]
            csum = np.zeros((k, n + 1))
            for j in range(k):
                csum[j, 1:] = np.cumsum(np.bincount(pos, weights=wg[j], minlength=n))
            ccnt = np.zeros(n + 1)
            ccnt[1:] = np.cumsum(np.bincount(pos, minlength=n))
            total += (csum[:, e] - csum[:, s]) / np.sqrt(np.maximum(ccnt[e] - ccnt[s], 1.0))
        return total

    @staticmethod
    def _spans(n: int, segs: list[tuple[int, int]]) -> np.ndarray:
        """Start and end of every window and paragraph a text of ``n`` normalised characters is scored over."""
        spans = features.windows(n, WINDOWS)
        if segs:
            spans = np.concatenate([spans, np.array(segs, dtype=np.int64)])
        return spans

    @staticmethod
    def _local_spans(n: int, segs: list[tuple[int, int]]) -> np.ndarray:
        """The smallest windows, paragraphs and lines of a text of ``n`` (> the smallest window)
        normalised characters: ``_spans`` without the whole text and the larger windows."""
        wins = features.windows(n, WINDOWS[-1:])
        wins = wins[(wins[:, 1] - wins[:, 0]) < n]  # all but the whole text
        return np.concatenate([wins, np.array(segs, dtype=np.int64).reshape(-1, 2)])

    def _one_window_c(self, ext, norm: str) -> np.ndarray | None:
        """``_one_window`` through the C extension: the same sums, added in the same order."""
        got = ext.window_sums(norm, self.bits, self._wt, len(self.categories))
        if got is None:
            return None
        nchar, nword, sums = got
        k = len(self.categories)
        rc, rw = math.sqrt(nchar), math.sqrt(nword)
        return np.array([b + sums[j] / rc + sums[k + j] / rw for j, b in enumerate(self.b.tolist())])

    def _one_window(self, norm: str) -> np.ndarray | None:
        """The logits of a text scored as one window, from ``features.first_buckets``
        (the same sums as the general path, in a handful of numpy calls); ``None`` when
        that does not apply."""
        got = features.first_buckets(norm, self.bits)
        if got is None:
            return None
        idx, nchar = got
        # Each bucket's weights for all categories, gathered at once: (n-grams, categories) float32.
        rows = self._bucket_rows[idx].view(self._wt.dtype).reshape(len(idx), len(self.categories))
        sums = np.add.reduceat(rows, [0, nchar], axis=0, dtype=np.float64)
        return self.b + sums[0] / math.sqrt(nchar) + sums[1] / math.sqrt(len(idx) - nchar)

    @cached_property
    def _wt(self) -> np.ndarray:
        """The weights transposed: one row of every category's float32 weight per bucket."""
        return np.ascontiguousarray(self.w.T, dtype=np.float32)

    @cached_property
    def _bucket_rows(self) -> np.ndarray:
        """``_wt`` viewed as one opaque element per bucket holding all its categories' weights."""
        wt = self._wt
        return wt.view(np.dtype((np.void, wt.itemsize * wt.shape[1]))).reshape(-1)

    def scores(self, text: str) -> dict[str, float]:
        """Probability-like score in 0..1 per category (``with_derived``: nested tiers, ``cyber_offense``)."""
        return with_derived({c: sigmoid(z) for c, z in zip(self.categories, self.logits(text).tolist())})


def with_derived(scores: dict[str, float]) -> dict[str, float]:
    """The tier scores made nested and ``cyber_offense`` added, for a model with tier heads.

    Each tier has its own weight row, so a text can score higher for
    "prohibited" than for "at least high-risk"; the larger wins (a prohibited
    request is also at least high-risk), and ``cyber_offense`` is
    ``max(cyber_prohibited, cyber_high_risk)``.  A model without tier heads
    (one trained before them) is returned as it is.
    """
    if "cyber_prohibited" not in scores:
        return scores
    out = dict(scores)
    out["cyber_high_risk"] = max(out["cyber_high_risk"], out["cyber_prohibited"])
    out["cyber_low_risk"] = max(out["cyber_low_risk"], out["cyber_high_risk"])
    out["cyber_offense"] = out["cyber_high_risk"]
    return out


def sigmoid(z: float) -> float:
    """A logit as a score in 0..1 (clipped, so it never overflows)."""
    return 1.0 / (1.0 + math.exp(-min(max(z, -40.0), 40.0)))

"""Why the built-in guard gave a text its scores: the part, the passage and the n-grams.

A category's score is the maximum over several views of the input (each text,
their concatenation when there are several, and every window and paragraph of
each), and each view's logit is the bias plus, for character and for word
n-grams separately, the sum of the n-grams' weights divided by the square root
of their count (``model.py``).  ``explain`` finds the view that set the score
and lists the n-grams that pushed it up and down the most, with the share each
one added to the logit, so that a security engineer triaging a false positive
(or a miss) sees what the classifier reacted to.  The contributions add up to
the logit the gateway computed; the tests hold them to that.

This is a diagnostic path in numpy, far slower than scoring; the gateway
never calls it.  ``clearance guard explain`` reads the same JSON lines as
``clearance guard score``.
"""

from __future__ import annotations

import dataclasses

import math
from dataclasses import dataclass

import numpy as np

from clearance.guard import features
from clearance.guard.linear import CONVERSATION_OFFSET, LinearGuard
from clearance.guard.model import LinearModel, sigmoid
from clearance.guard.normalise import expanded

EXCERPT_CHARS = 300


@dataclass(frozen=True)
class Contribution:
    """One n-gram of the deciding passage and what it added to the logit."""

    ngram: str
    kind: str  # "chars" | "word" | "words"
    start: int  # offset in the normalised text
    value: float


@dataclass(frozen=True)
class Explanation:
    """Where one category's score came from."""

    category: str
    score: float
    logit: float
    bias: float
    offset: float  # subtracted from a concatenation's logit (``CONVERSATION_OFFSET``), else 0
    source: str  # "text" | "conversation"
    index: int | None  # which text, for source "text"
    span: tuple[int, int]  # the deciding window or paragraph, in the normalised text
    passage: str  # that passage, normalised, cut to EXCERPT_CHARS
    up: list[Contribution]
    down: list[Contribution]

    def to_dict(self) -> dict:
        def c(x: Contribution) -> dict:
            return {"ngram": x.ngram, "kind": x.kind, "start": x.start, "value": round(x.value, 4)}
        return {
            "score": round(self.score, 6), "logit": round(self.logit, 4), "bias": round(self.bias, 4),
            "offset": self.offset, "source": self.source, "index": self.index,
            "span": list(self.span), "passage": self.passage,
            "up": [c(x) for x in self.up], "down": [c(x) for x in self.down],
        }


@dataclass(frozen=True)
class _View:
    """One text's n-grams as the scorer counts them, and its logit per category for each span."""

    norm: str
    spans: np.ndarray  # (spans, 2)
    logits: np.ndarray  # (categories, spans), bias included
    kinds: tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], ...]  # (bucket, start, length, kind)


def _view(model: LinearModel, text: str) -> _View | None:
    norm = features.normalise(text)
    if not norm:
        return None
    n = len(norm)
    spans = model._spans(n, features.segments(text, n))  # a short one-paragraph text: [[0, n]]
    (ci, cp, cl), (wi, wp, wl) = features.all_grams(norm, model.bits)
    u = (len(wi) + 1) // 2  # the word unigrams come first, then one bigram fewer
    wk = np.where(np.arange(len(wi)) < u, "word", "words")
    kinds = []
    for idx, pos, length, label in ((ci, cp, cl, np.full(len(ci), "chars")), (wi, wp, wl, wk)):
        keep = features.first_mask(idx, pos, model.bits) if len(idx) else np.zeros(0, bool)
        kinds.append((idx[keep], pos[keep], length[keep], label[keep]))
    logits = model.span_sums(norm, spans) + model.b[:, None]
    return _View(norm, spans, logits, tuple(kinds))


def _contributions(model: LinearModel, view: _View, cat: int, span: tuple[int, int]) -> list[Contribution]:
    s, e = span
    out = []
    for idx, pos, length, label in view.kinds:
        inside = (pos >= s) & (pos < e)
        if not inside.any():
            continue
        scale = 1.0 / math.sqrt(int(inside.sum()))
        for b, p, n, kind in zip(idx[inside].tolist(), pos[inside].tolist(), length[inside].tolist(),
                                 label[inside].tolist()):
            out.append(Contribution(view.norm[p:p + n], kind, p, float(model.w[cat, b]) * scale))
    return out


def explain(guard: LinearGuard, texts: list[str], top: int = 10) -> dict[str, Explanation]:
    """For each category, the view of ``texts`` that set its score and its strongest n-grams.

    ``texts`` are what the gateway screens for one request (``LinearGuard.score``);
    blank ones are skipped as there.  An empty input explains nothing.
    """
    model = guard.model
    parts = [t for t in texts if t and t.strip()]
    views: list[tuple[str, int | None, float, _View]] = []
    for i, t in enumerate(parts):
        v = _view(model, expanded(t))  # as the guard reads it: decoded payloads appended
        if v is not None:
            views.append(("text", i, 0.0, v))
    if len(parts) > 1:
        v = _view(model, expanded("\n\n".join(parts)))
        if v is not None:
            views.append(("conversation", None, CONVERSATION_OFFSET, v))
    out: dict[str, Explanation] = {}
    for c, cat in enumerate(model.categories):
        best = None
        for source, index, offset, v in views:
            j = int(np.argmax(v.logits[c]))
            z = float(v.logits[c, j]) - offset
            if best is None or z > best[0]:
                best = (z, source, index, offset, v, j)
        if best is None:
            continue
        z, source, index, offset, v, j = best
        span = (int(v.spans[j, 0]), int(v.spans[j, 1]))
        contribs = _contributions(model, v, c, span)
        up = sorted((x for x in contribs if x.value > 0), key=lambda x: -x.value)[:top]
        down = sorted((x for x in contribs if x.value < 0), key=lambda x: x.value)[:top]
        out[cat] = Explanation(cat, sigmoid(z), z, float(model.b[c]), offset, source, index, span,
                               v.norm[span[0]:span[1]][:EXCERPT_CHARS], up, down)
    return _derived(out)


def _derived(out: dict[str, Explanation]) -> dict[str, Explanation]:
    """The explanations of the scores ``model.with_derived`` reports: a nested tier, or
    ``cyber_offense``, is explained by the head whose score it took."""
    if "cyber_prohibited" not in out:
        return out

    def larger(*cats: str) -> Explanation:
        return max((out[c] for c in cats), key=lambda e: e.logit)
    high = larger("cyber_high_risk", "cyber_prohibited")
    low = larger("cyber_low_risk", "cyber_high_risk", "cyber_prohibited")
    out = dict(out)
    out["cyber_high_risk"] = dataclasses.replace(high, category="cyber_high_risk")
    out["cyber_low_risk"] = dataclasses.replace(low, category="cyber_low_risk")
    out["cyber_offense"] = dataclasses.replace(high, category="cyber_offense")
    return out

"""The built-in guard: the shipped linear classifier, screening a conversation in full.

Each text is scored over windows at several scales (see ``model.py``); when a
conversation has several texts, their concatenation is scored too, so an
attack spread over turns (many-shot, split instructions) is seen whole.
The score of a category is the maximum over all of these.  Scoring is pure
numpy on read-only arrays, so one instance is safe to share between threads.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from clearance.guard.base import error_scores, flag
from clearance.guard.model import MODEL_DIR, LinearModel
from clearance.types import GuardScores


class LinearGuard:
    """``Guard`` backed by a ``LinearModel``."""

    def __init__(self, model: LinearModel, thresholds: dict[str, float], name: str = "builtin",
                 max_chars: int = 2_000_000) -> None:
        self.model = model
        self.thresholds = dict(thresholds)
        self.name = name
        self.max_chars = max_chars

    @classmethod
    def load(cls, thresholds: dict[str, float], model_dir: Path | None = None, name: str = "builtin",
             max_chars: int = 2_000_000) -> "LinearGuard":
        return cls(LinearModel.load(model_dir or MODEL_DIR), thresholds, name, max_chars)

    def raw_scores(self, texts: list[str]) -> dict[str, float]:
        parts = [t for t in texts if t and t.strip()]
        if len(parts) > 1:
            parts.append("\n\n".join(parts))
        best = {c: 0.0 for c in self.model.categories}
        for t in parts:
            for c, s in self.model.scores(t).items():
                if s > best[c]:
                    best[c] = s
        if not parts:
            best = self.model.scores("")
        return best

    def score(self, texts: list[str]) -> GuardScores:
        try:
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                return error_scores(self.name, "guard input must be a list of strings")
            if sum(len(t) for t in texts) > self.max_chars:
                return error_scores(self.name, f"input longer than {self.max_chars} characters")
            scores = {c: round(s, 6) for c, s in self.raw_scores(texts).items()}
            return GuardScores(scores=scores, flagged=flag(scores, self.thresholds), guard=self.name)
        except Exception as e:  # noqa: BLE001 - a guard never raises to the pipeline
            return error_scores(self.name, f"{type(e).__name__}: {e}")

    async def ascore(self, texts: list[str]) -> GuardScores:
        # Short inputs are faster inline than in a thread; long ones leave the event loop free.
        if sum(len(t) for t in texts if isinstance(t, str)) < 20_000:
            return self.score(texts)
        return await asyncio.to_thread(self.score, texts)

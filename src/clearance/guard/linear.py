"""The built-in guard: the shipped linear classifier, screening a conversation in full.

Each text is first normalised (``normalise.expanded``: invisible characters
removed, NFKC, homoglyphs folded, and base64, hex, ROT13 and other payloads
decoded and appended as paragraphs of their own), then scored over windows at
several scales, by paragraph and by line (see ``model.py``); when a
conversation has several texts, their concatenation is scored too, so an
attack spread over turns (many-shot, split instructions) is seen whole.
The score of a category is the maximum over all of these.  The
concatenation's logits are lowered by ``CONVERSATION_OFFSET`` first: joined
texts score higher than the same texts alone (n-grams are counted once per
text, so later messages keep only their rarer, more telling n-grams), and
without the offset benign multi-message conversations were flagged about
four times as often as their messages scored one by one (docs/guard.md).
Each text's scores are kept in a bounded cache (``cache.py``): a
conversation resent with every turn, or a system prompt sent with every
request, is scored once.  Scoring is pure numpy on read-only arrays, so one
instance is safe to share between threads.

``score`` also takes the texts' roles.  They change nothing unless the guard
is built with ``system_prompts`` ("local" or "windows", off by default): a
system text longer than ``long_system_prompt`` characters is then read over
its 600-character spans only and left out of the joined conversation, at a
measured cost in recall for attacks sent as a system prompt (docs/guard.md,
"Coding agents").
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from clearance.guard.base import error_scores, flag
from clearance.guard.cache import ScoreCache
from clearance.guard.model import MODEL_DIR, WINDOWS, LinearModel, sigmoid, with_derived
from clearance.guard.normalise import expanded
from clearance.guard.settings import DEFAULT_SCORE_CACHE_ENTRIES
from clearance.types import GuardScores


# Logits subtracted from a conversation's concatenation: chosen on a development split of
# training families as the smallest offset at which benign conversations were flagged no more
# often than their messages scored alone (docs/guard.md, "Conversations").
CONVERSATION_OFFSET = 1.0
_CONVERSATION = b"conversation"
# How a long system text is read (``LinearGuard.system_prompts``, ``LinearModel.logits``'s ``scope``).
SYSTEM_PROMPT_SCOPES = ("all", "local", "windows")
# Characters above which a system text counts as long (never below the smallest window).
LONG_SYSTEM_PROMPT = 600


class LinearGuard:
    """``Guard`` backed by a ``LinearModel``."""

    # ``score``/``ascore`` take ``roles`` too (``GuardSet.ascreen`` passes them only to such guards).
    accepts_roles = True

    def __init__(self, model: LinearModel, thresholds: dict[str, float], name: str = "builtin",
                 max_chars: int = 2_000_000, cache_entries: int = DEFAULT_SCORE_CACHE_ENTRIES,
                 system_prompts: str = "all", long_system_prompt: int = LONG_SYSTEM_PROMPT) -> None:
        self.model = model
        self.thresholds = dict(thresholds)
        self.name = name
        self.max_chars = max_chars
        self.cache: ScoreCache[tuple[float, ...]] = ScoreCache(cache_entries)
        # Role-aware scoring (off by default; docs/guard.md, "Coding agents"): with ``"local"``, a
        # system text longer than ``long_system_prompt`` characters is read over its 600-character windows,
        # paragraphs and lines only (``"windows"``: its 600-character windows only), and is left out
        # of the joined conversation.  ``"all"`` (the default), or no roles: every text as always.
        if system_prompts not in SYSTEM_PROMPT_SCOPES:
            raise ValueError(f"system_prompts must be one of {SYSTEM_PROMPT_SCOPES}")
        self.system_prompts = system_prompts
        self.long_system_prompt = max(long_system_prompt, WINDOWS[-1][0])

    @classmethod
    def load(cls, thresholds: dict[str, float], model_dir: Path | None = None, name: str = "builtin",
             max_chars: int = 2_000_000, cache_entries: int = DEFAULT_SCORE_CACHE_ENTRIES,
             system_prompts: str = "all", long_system_prompt: int = LONG_SYSTEM_PROMPT) -> "LinearGuard":
        return cls(LinearModel.load(model_dir or MODEL_DIR), thresholds, name, max_chars, cache_entries,
                   system_prompts, long_system_prompt)

    def logits(self, text: str, scope: str = "all") -> np.ndarray:
        """The model's logits per head for ``text``, scored as ``normalise.expanded``: its
        canonical form with every payload decoded from it as a paragraph of its own
        (``scope``: see ``LinearModel.logits``)."""
        return self.model.logits(expanded(text), scope)

    def _local_scores(self, text: str) -> tuple[float, ...]:
        """A long system text's scores over the spans ``system_prompts`` names."""
        scope = self.system_prompts
        return self.cache.get_or_compute(
            text, lambda t: tuple(sigmoid(z) for z in self.logits(t, scope).tolist()), scope.encode())

    def _is_local(self, text: str, role: str | None) -> bool:
        return self.system_prompts != "all" and role == "system" and len(text) > self.long_system_prompt

    def _text_scores(self, text: str) -> tuple[float, ...]:
        """One text's score per head (in ``model.categories`` order), from the cache when it has it."""
        return self.cache.get_or_compute(text, lambda t: tuple(sigmoid(z) for z in self.logits(t).tolist()))

    def _conversation_scores(self, joined: str) -> tuple[float, ...]:
        """The scores of a conversation's texts joined into one, with ``CONVERSATION_OFFSET`` applied."""
        def compute(t: str) -> tuple[float, ...]:
            return tuple(sigmoid(z - CONVERSATION_OFFSET) for z in self.logits(t).tolist())
        return self.cache.get_or_compute(joined, compute, _CONVERSATION)

    def raw_scores(self, texts: list[str], roles: list[str] | None = None) -> dict[str, float]:
        """Each text's scores, and the joined conversation's, maximum per category.  ``roles``
        (one per text: ``system``, ``user``, ``assistant``, ``tool``) matter only with
        ``system_prompts``; without them every text is scored as it always was."""
        if roles is not None and len(roles) != len(texts):
            raise ValueError("guard roles must be one per text")
        pairs = [(t, r) for t, r in zip(texts, roles if roles is not None else [None] * len(texts))
                 if t and t.strip()]
        if not pairs:
            return self.model.scores("")
        local = [self._is_local(t, r) for t, r in pairs]
        each = [self._local_scores(t) if lo else self._text_scores(t) for (t, _), lo in zip(pairs, local)]
        joined = [t for (t, _), lo in zip(pairs, local) if not lo]
        if len(joined) > 1:
            each.append(self._conversation_scores("\n\n".join(joined)))
        return with_derived(dict(zip(self.model.categories, map(max, zip(*each)))))

    def score(self, texts: list[str], roles: list[str] | None = None) -> GuardScores:
        try:
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                return error_scores(self.name, "guard input must be a list of strings")
            if roles is not None and (not isinstance(roles, list) or len(roles) != len(texts)
                                      or not all(isinstance(r, str) for r in roles)):
                return error_scores(self.name, "guard roles must be a list of strings, one per text")
            if sum(len(t) for t in texts) > self.max_chars:
                return error_scores(self.name, f"input longer than {self.max_chars} characters")
            scores = {c: round(s, 6) for c, s in self.raw_scores(texts, roles).items()}
            return GuardScores(scores=scores, flagged=flag(scores, self.thresholds), guard=self.name)
        except Exception as e:  # noqa: BLE001 - a guard never raises to the pipeline
            return error_scores(self.name, f"{type(e).__name__}: {e}")

    async def ascore(self, texts: list[str], roles: list[str] | None = None) -> GuardScores:
        # Short inputs are faster inline than in a thread; long ones leave the event loop free.
        if sum(len(t) for t in texts if isinstance(t, str)) < 20_000:
            return self.score(texts, roles)
        return await asyncio.to_thread(self.score, texts, roles)

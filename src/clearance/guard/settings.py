"""Configuration of the guard stage: the `guard:` section of clearance.yaml.

Example::

    guard:
      default: builtin
      thresholds: {jailbreak: 0.5, cyber_prohibited: 0.5, cyber_high_risk: 0.5,
                   cyber_low_risk: 0.5, cyber_offense: 0.5}
      guards:
        llama-guard:
          kind: llama_guard
          url: http://127.0.0.1:8001/v1/chat/completions
          model: meta-llama/Llama-Guard-3-8B
          api_key_env: LLAMA_GUARD_KEY
          timeout_seconds: 2.0
      models:
        frontier-cyber: {guard: llama-guard, required: true}
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from clearance.guard.base import CATEGORIES  # light: clearance.types only

BUILTIN = "builtin"
# Recommended thresholds: the shipped model's 0.5 point is calibrated to about
# 1% false positives on held-in benign text (see DATA_CARD.md).
DEFAULT_THRESHOLDS = {c: 0.5 for c in CATEGORIES}
# Texts whose scores the built-in guard keeps: about 14 MB of digests and scores when full.
DEFAULT_SCORE_CACHE_ENTRIES = 65_536


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RemoteGuardSettings(_Strict):
    """A guard served over HTTP: a Llama Guard-style chat model or a moderation endpoint."""

    kind: Literal["llama_guard", "moderation"]
    url: str
    model: str = ""
    api_key_env: str | None = None
    timeout_seconds: float = Field(default=5.0, gt=0)
    # Map the endpoint's category names (e.g. "S14", "illicit/violent") to Clearance categories.
    category_map: dict[str, str] = Field(default_factory=dict)


class BuiltinGuardSettings(_Strict):
    """The shipped linear classifier, or one retrained into ``model_dir``."""

    kind: Literal["builtin"] = "builtin"
    model_dir: str | None = None
    # How a long system prompt is read (docs/guard.md, "Coding agents"; measured, OFF by default):
    # "all" (every span, as every other text); "local" (its 600-character windows, paragraphs and
    # lines only, and left out of the joined conversation); "windows" (its 600-character windows
    # only).  Any caller writes its own system prompt, so both lower recall for attacks sent there.
    system_prompts: Literal["all", "local", "windows"] = "all"
    long_system_prompt_chars: int = Field(default=600, ge=600)


class ModelGuardSettings(_Strict):
    """Per-model override: which guard screens calls to this model, and whether it must answer."""

    guard: str = BUILTIN
    required: bool = True


class GuardSettings(_Strict):
    enabled: bool = True
    default: str = BUILTIN
    thresholds: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    guards: dict[str, RemoteGuardSettings | BuiltinGuardSettings] = Field(default_factory=dict)
    models: dict[str, ModelGuardSettings] = Field(default_factory=dict)
    # Long texts are screened in full; this caps the characters per request (beyond it: error).
    max_chars: int = Field(default=2_000_000, gt=0)
    # The built-in guard keeps the scores of this many recent texts (by digest, never the text),
    # so a resent conversation or a shared system prompt is scored once; 0 turns the cache off.
    score_cache_entries: int = Field(default=DEFAULT_SCORE_CACHE_ENTRIES, ge=0)
    # Also screen what models answer: the scores of the answer so far go through the
    # same policy; a non-streamed answer that fails is withheld (403), a stream that
    # fails is stopped with an error event.  Streams are re-screened every
    # ``response_screen_every_chars`` characters.
    screen_responses: bool = False
    response_screen_every_chars: int = Field(default=400, gt=0)
    # System prompts the operator vouches for (text files; paths relative to the config): their lines
    # are left out of requests' system texts before screening, every other line is screened (trusted.py).
    trusted_system_prompts: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_guards(self) -> "GuardSettings":
        names = set(self.guards) | {BUILTIN}
        unknown = {self.default} - names | {m.guard for m in self.models.values()} - names
        if unknown:
            raise ValueError(f"guard settings name unknown guards: {sorted(unknown)}")
        for cat, t in self.thresholds.items():
            if not 0.0 <= t <= 1.0:
                raise ValueError(f"threshold for {cat!r} must be in 0..1")
        return self

    def guard_for(self, model: str) -> tuple[str, bool]:
        """The guard name screening ``model`` and whether it is required (fail closed)."""
        m = self.models.get(model)
        return (m.guard, m.required) if m else (self.default, True)

"""Build guards from settings: the default guard, and the guard for each model.

``load_guard`` returns the configured default guard.  ``GuardSet`` holds
every configured guard and answers, for a model, which guard screens it and
whether a guard error must deny the request (fail closed).
"""

from __future__ import annotations

import threading
from pathlib import Path

from clearance.guard.base import Guard, error_scores
from clearance.guard.linear import LONG_SYSTEM_PROMPT, LinearGuard
from clearance.guard.settings import BUILTIN, BuiltinGuardSettings, GuardSettings, RemoteGuardSettings
from clearance.guard.trusted import TrustedPrompts
from clearance.types import GuardScores

_BUILTIN_CACHE: dict[Path | None, object] = {}
_LOCK = threading.Lock()


def _builtin(name: str, spec: BuiltinGuardSettings | None, settings: GuardSettings,
             config_dir: Path | None) -> LinearGuard:
    model_dir = None
    if spec and spec.model_dir:
        model_dir = Path(spec.model_dir)
        if not model_dir.is_absolute() and config_dir is not None:
            model_dir = (config_dir / model_dir).resolve()
    with _LOCK:  # the shipped weights are loaded once per process
        model = _BUILTIN_CACHE.get(model_dir)
        if model is None:
            from clearance.guard.model import MODEL_DIR, LinearModel
            model = LinearModel.load(model_dir or MODEL_DIR)
            _BUILTIN_CACHE[model_dir] = model
    return LinearGuard(model, settings.thresholds, name, settings.max_chars,  # type: ignore[arg-type]
                       settings.score_cache_entries,
                       spec.system_prompts if spec else "all",
                       spec.long_system_prompt_chars if spec else LONG_SYSTEM_PROMPT)


def build_guard(name: str, settings: GuardSettings, config_dir: Path | None = None) -> Guard:
    """The guard called ``name`` in ``settings`` (``builtin`` is always available)."""
    spec = settings.guards.get(name)
    if name == BUILTIN and spec is None:
        return _builtin(name, None, settings, config_dir)
    if isinstance(spec, BuiltinGuardSettings):
        return _builtin(name, spec, settings, config_dir)
    if isinstance(spec, RemoteGuardSettings):
        from clearance.guard.remote import RemoteGuard  # the HTTP client loads only when a remote guard is used

        return RemoteGuard(name, spec, settings.thresholds)
    raise KeyError(f"unknown guard {name!r}")


def load_guard(settings: GuardSettings, config_dir: Path | None = None) -> Guard:
    """The default guard of ``settings``; raises ``ValueError`` if its model cannot be read."""
    try:
        return build_guard(settings.default, settings, config_dir)
    except (OSError, KeyError) as e:
        raise ValueError(f"cannot load guard {settings.default!r}: {e}") from None


class GuardSet:
    """Every configured guard, chosen per model."""

    def __init__(self, settings: GuardSettings, config_dir: Path | None = None) -> None:
        self.settings = settings
        names = {settings.default} | {m.guard for m in settings.models.values()}
        self.guards: dict[str, Guard] = {n: build_guard(n, settings, config_dir) for n in sorted(names)}
        self.trusted = TrustedPrompts.load(settings.trusted_system_prompts, config_dir)

    def for_model(self, model: str) -> tuple[Guard, bool]:
        """The guard that screens ``model`` and whether it is required (fail closed)."""
        name, required = self.settings.guard_for(model)
        return self.guards[name], required

    async def ascreen(self, model: str, texts: list[str],
                      roles: list[str] | None = None) -> tuple[GuardScores, bool]:
        """Scores for a call to ``model``, and whether they must deny it (error on a required guard).
        ``roles`` (one per text) reach only a guard that reads them (``accepts_roles``: the
        built-in guard); every other guard is called with the texts alone, as before."""
        if not self.settings.enabled:
            return GuardScores(guard="disabled"), False
        guard, required = self.for_model(model)
        if self.trusted is not None:  # lines of system prompts the operator vouches for are not screened
            texts = self.trusted.screened(texts, roles)
        try:
            if roles is not None and getattr(guard, "accepts_roles", False):
                scores = await guard.ascore(texts, roles=roles)  # type: ignore[call-arg]
            else:
                scores = await guard.ascore(texts)
        except Exception as e:  # noqa: BLE001 - guards should not raise; be safe anyway
            scores = error_scores(guard.name, f"guard failed: {type(e).__name__}")
        return scores, bool(scores.error) and required

"""Guard: classifiers that score every prompt before it reaches a model.

Public API::

    from clearance.guard import Guard, GuardSet, load_guard, cedar_context
    guard = load_guard(config.guard, config_dir)
    scores = guard.score(request.texts())          # or: await guard.ascore(...)

The names are imported on first use: ``clearance.guard.settings`` is read by
every command that loads a config, and must not pull in numpy and the HTTP
client with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clearance.guard.base import CATEGORIES, Guard, message_texts
    from clearance.guard.context import cedar_context, policy_scores
    from clearance.guard.loader import GuardSet, build_guard, load_guard

_EXPORTS = {
    "CATEGORIES": "clearance.guard.base", "Guard": "clearance.guard.base", "message_texts": "clearance.guard.base",
    "cedar_context": "clearance.guard.context", "policy_scores": "clearance.guard.context",
    "GuardSet": "clearance.guard.loader", "build_guard": "clearance.guard.loader", "load_guard": "clearance.guard.loader",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'clearance.guard' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

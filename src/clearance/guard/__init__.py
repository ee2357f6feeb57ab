"""Guard: classifiers that score every prompt before it reaches a model.

Public API::

    from clearance.guard import Guard, GuardSet, load_guard, cedar_context
    guard = load_guard(config.guard, config_dir)
    scores = guard.score(request.texts())          # or: await guard.ascore(...)
"""

from clearance.guard.base import CATEGORIES, Guard, message_texts
from clearance.guard.context import cedar_context
from clearance.guard.loader import GuardSet, build_guard, load_guard

__all__ = ["CATEGORIES", "Guard", "GuardSet", "build_guard", "cedar_context", "load_guard", "message_texts"]

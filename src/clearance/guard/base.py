"""The ``Guard`` protocol and helpers every guard shares.

A guard turns the texts of a conversation into ``GuardScores``.  It never
raises to its caller: failures come back as ``GuardScores(error=...)`` so the
pipeline can fail closed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from clearance.types import GuardScores

# The one list of guard categories: what guards report, what the policy context
# carries (``context.guard.<category>``, a Cedar decimal) and what thresholds name.
#
# The cyber tiers are NESTED (cumulative) probabilities, so for one text
# cyber_low_risk >= cyber_high_risk >= cyber_prohibited:
#   cyber_prohibited  P(prohibited): ransomware, destructive sabotage, denial of
#                     service, exfiltration, malware development or delivery,
#                     backbone attacks, cyber-physical sabotage, command and
#                     control, defence evasion.  Refused to everyone.
#   cyber_high_risk   P(at least high-risk dual use): hacking, penetration
#                     testing, red teaming, exploit development, privilege
#                     escalation, lateral movement, credential attacks.
#   cyber_low_risk    P(at least low-risk dual use): OSINT, scanning.
#   cyber_offense     max(cyber_prohibited, cyber_high_risk); kept so policies
#                     written before the tiers keep working.
# A guard that reports only ``cyber_offense`` (an older model, a remote guard) is
# read fail closed: see ``clearance.guard.context.policy_scores``.
CATEGORIES = ("jailbreak", "cyber_prohibited", "cyber_high_risk", "cyber_low_risk", "cyber_offense")
CYBER_TIERS = ("cyber_prohibited", "cyber_high_risk", "cyber_low_risk")


@runtime_checkable
class Guard(Protocol):
    """Scores a conversation: system prompt, every message, tool results.

    A guard that also reads each text's role sets ``accepts_roles = True`` and takes
    ``roles=`` (one per text) in ``score`` and ``ascore`` (the built-in guard does);
    ``GuardSet.ascreen`` passes roles to no other guard.
    """

    name: str

    def score(self, texts: list[str]) -> GuardScores: ...

    async def ascore(self, texts: list[str]) -> GuardScores: ...


def flag(scores: Mapping[str, float], thresholds: Mapping[str, float]) -> tuple[str, ...]:
    """Categories whose score reaches its threshold (categories without one are not flagged)."""
    return tuple(c for c, s in scores.items() if c in thresholds and s >= thresholds[c])


def error_scores(guard: str, message: str) -> GuardScores:
    return GuardScores(scores={}, flagged=(), guard=guard, error=message)


def content_text(content: Any) -> str:
    """Text of an OpenAI message ``content``: a string or a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            if isinstance(p, str):
                parts.append(p)
            elif isinstance(p, Mapping) and isinstance(p.get("text"), str):
                parts.append(p["text"])
        return "\n".join(parts)
    raise ValueError("message content must be a string or a list of parts")


def message_texts(messages: Iterable[Any]) -> list[str]:
    """Every text of OpenAI-format messages, tool calls' arguments included."""
    out: list[str] = []
    for m in messages:
        if not isinstance(m, Mapping):
            raise ValueError("each message must be an object")
        t = content_text(m.get("content"))
        if t:
            out.append(t)
        for call in m.get("tool_calls") or ():
            fn = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(fn, Mapping) and isinstance(fn.get("arguments"), str):
                out.append(fn["arguments"])
    return out

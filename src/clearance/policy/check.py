"""Prove policy invariants over the store, or find a counterexample.

The check is exhaustive over the finite store and over every context that can
change a decision:

* **Principals.** Every user in the store, grouped into classes per model:
  two users are in one class when nothing the model's policies or the
  invariants can read tells them apart (the same org when the org is named,
  the same groups and approval lists among those that matter, the same
  attributes that are read, with nationality reduced to the literals it is
  compared with).  One representative per class is evaluated.
* **Models.** Every model of the config, each against its own policy slice.
* **Contexts.** Each policy is partially evaluated for the class and model
  (``partial.py``), leaving a formula over context atoms.  Its atoms name
  every literal that matters: instants (directive, grant and other windows:
  ``now``, and each boundary and the millisecond after it, from the check's
  ``now`` on), guard thresholds (both sides of and equal to each, with the
  cyber tiers nested: prohibited <= high-risk <= low-risk, ``cyber_offense``
  equal to high-risk as the request path reads it), the use cases compared
  (each, and one that matches none: every declared use case falls in one of
  these), the tool names read (every subset, plus one other tool) and whether
  images are sent.  One context per combination is tried.

A counterexample is confirmed with the real engine (``PolicyEngine.decide``)
before it is reported.  Anything the evaluator cannot follow exactly, or a
disagreement with the engine, makes the invariant ``undecidable``, which
callers treat as a failure (fail closed).
"""

from __future__ import annotations

import itertools
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from clearance.guard.base import CATEGORIES as GUARD_CATEGORIES
from clearance.policy.clock import cedar_datetime_ms, epoch_ms, utcnow
from clearance.policy.engine import (
    ACTIONS, USE_CASE_ATTRIBUTES, PolicyContext, PolicyEngine, _entities_json, _may_apply, build_engine,
)
from clearance.policy.invariants import Invariant
from clearance.policy.partial import (
    DT, Ctx, Entity, Evaluator, Undecidable, _cmp, atoms, convert_attr, r_and, r_not, r_or,
)
from clearance.policy.world import PolicyWorld
from clearance.types import Principal

_NS = "Clearance::"
_USER, _ORG, _GROUP, _LIST, _MODEL, _ACTION = (
    f"{_NS}User", f"{_NS}Org", f"{_NS}OrgGroup", f"{_NS}ApprovalList", f"{_NS}Model", f"{_NS}Action")
_CHAIN = ("cyber_prohibited", "cyber_high_risk", "cyber_low_risk")
_MAX_TOOL_NAMES = 12
_USER_ATTRS = ("nationality", "us_person", "verified")


@dataclass
class Counterexample:
    user: str
    org: str
    model: str
    action: str
    now: str
    use_case: str
    guard: dict[str, float]
    tools: list[str]
    has_images: bool
    allowed: bool
    reasons: list[str]
    principal: dict[str, Any] = field(default_factory=dict)
    class_size: int = 1  # users in the store that get the same decisions

    def to_json(self) -> dict:
        return {"principal": {"user": self.user, "org": self.org, **self.principal}, "model": self.model,
                "action": self.action,
                "context": {"now": self.now, "use_case": self.use_case, "guard": self.guard, "tools": self.tools,
                            "has_images": self.has_images},
                "decision": "allow" if self.allowed else "deny", "reasons": self.reasons,
                "users_alike": self.class_size}

    def describe(self) -> str:
        p = self.principal
        who = (f"{self.user} (org {self.org}, nationality {p.get('nationality') or '-'}, "
               f"us_person={p.get('us_person')}, verified={p.get('verified')}"
               + (f", groups {', '.join(p['groups'])}" if p.get("groups") else "") + ")")
        flags = {k: v for k, v in self.guard.items() if v}
        ctx = (f"now {self.now}, use case {self.use_case!r}, guard {flags or 'no flags'}"
               + (f", tools {self.tools}" if self.tools else "") + (", with images" if self.has_images else ""))
        verdict = "ALLOWED" if self.allowed else "DENIED"
        return f"{who} {verdict} to {self.action} {self.model} ({ctx}; by {', '.join(self.reasons) or '-'})"


@dataclass
class InvariantResult:
    id: str
    kind: str
    title: str
    status: str  # "holds" | "violated" | "undecidable"
    counterexample: Counterexample | None = None
    reason: str = ""
    pairs: int = 0  # (principal class, model) pairs checked

    def to_json(self) -> dict:
        return {"id": self.id, "kind": self.kind, "title": self.title, "status": self.status,
                "reason": self.reason, "pairs_checked": self.pairs,
                "counterexample": self.counterexample.to_json() if self.counterexample else None}


@dataclass
class CheckReport:
    now: datetime
    snapshot_hash: str
    results: list[InvariantResult]
    users: int
    models: int
    classes: int
    seconds: float

    @property
    def ok(self) -> bool:
        return all(r.status == "holds" for r in self.results)

    def failed(self) -> list[InvariantResult]:
        return [r for r in self.results if r.status != "holds"]

    def to_json(self) -> dict:
        return {"ok": self.ok, "now": self.now.isoformat(), "snapshot_hash": self.snapshot_hash,
                "users": self.users, "models": self.models, "principal_classes": self.classes,
                "seconds": round(self.seconds, 3), "results": [r.to_json() for r in self.results]}


# -- the world, as the evaluator sees it -----------------------------------------


def _refs(node: Any, out: set) -> set:
    """Every entity named anywhere in a JSON-form policy (scopes, literals, link values)."""
    if isinstance(node, dict):
        if isinstance(node.get("type"), str) and isinstance(node.get("id"), str):
            out.add(Entity(node["type"], node["id"]))
        for v in node.values():
            _refs(v, out)
    elif isinstance(node, list):
        for v in node:
            _refs(v, out)
    return out


def _attr_uses(node: Any, counts: dict, literals: dict) -> None:
    """Count reads of each attribute, and those that compare ``principal.<attr>`` with a string literal."""
    if isinstance(node, dict):
        for op, body in node.items():
            if op in ("==", "!=") and isinstance(body, dict):
                for a, b in ((body.get("left"), body.get("right")), (body.get("right"), body.get("left"))):
                    if (isinstance(a, dict) and "." in a and a["."].get("left") == {"Var": "principal"}
                            and isinstance(b, dict) and isinstance(b.get("Value"), str)):
                        literals.setdefault(a["."]["attr"], set()).add(b["Value"])
            if op in (".", "has") and isinstance(body, dict) and "attr" in body:
                counts[body["attr"]] = counts.get(body["attr"], 0) + 1
            _attr_uses(body, counts, literals)
    elif isinstance(node, list):
        for v in node:
            _attr_uses(v, counts, literals)


class _World:
    """The store's entities and compiled policies, indexed for the checker."""

    def __init__(self, world: PolicyWorld, engine: PolicyEngine) -> None:
        self.world = world
        self.engine = engine
        pj = json.loads(engine.policy_json)
        self.static: dict[str, dict] = pj["staticPolicies"]
        self.templates: dict[str, dict] = pj["templates"]
        self.links: list[dict] = pj["templateLinks"]
        attrs: dict[Entity, dict] = {}
        parents: dict[Entity, tuple] = {}
        for e in _entities_json(world):
            ent = Entity(e["uid"]["type"], e["uid"]["id"])
            if e["uid"]["type"] != _USER:  # users' attributes are read from their records, below
                attrs[ent] = {k: convert_attr(v) for k, v in e["attrs"].items()}
            parents[ent] = tuple(Entity(p["type"], p["id"]) for p in e["parents"])
        self.org_up: dict[str, frozenset] = {}
        for slug in world.orgs:
            self.org_up[slug] = self._closure(Entity(_ORG, slug), parents)
        self.models = {m.name: m for m in world.models}
        self.attrs = attrs
        self.parents = parents
        self.lists_of: dict[str, set] = defaultdict(set)  # model -> its approval lists ("m", "m#use-case")
        for ent in parents:
            if ent.type == _LIST:
                self.lists_of[ent.id.partition("#")[0]].add(ent)
        self._reads: dict[tuple, tuple] = {}

    def reads(self, pid: str, pol: dict, slots: dict, model: str) -> tuple[tuple, frozenset, bool]:
        """What a policy can read of a caller on ``model``: user attributes, the entities an ``in`` could
        test (those it names, its slots, and the approval lists of the models it names or applies to),
        and whether it names a user."""
        key = (pid, model)
        hit = self._reads.get(key)
        if hit is None:
            named = _refs(pol, set()) | set(slots.values())
            counts: dict = {}
            _attr_uses(pol, counts, {})
            models = {model} | {e.id for e in named if e.type == _MODEL}
            lists = {e for m in models for e in self.lists_of.get(m, ())}
            hit = (tuple(a for a in _USER_ATTRS if counts.get(a)), frozenset(named | lists),
                   any(e.type == _USER for e in named))
            self._reads[key] = hit
        return hit

    @staticmethod
    def _closure(ent: Entity, parents: dict) -> frozenset:
        seen: set = set()
        todo = list(parents.get(ent, ()))
        while todo:
            p = todo.pop()
            if p not in seen:
                seen.add(p)
                todo.extend(parents.get(p, ()))
        return frozenset(seen)

    def slice(self, model: str) -> tuple[list[tuple[str, dict, dict]], set, dict, dict]:
        """The policies that can apply to ``model`` as (id, policy, slots), the entities they name,
        how often each attribute is read and the string literals principal attributes are compared with."""
        m = self.models[model]
        out = [(pid, pol, {}) for pid, pol in self.static.items() if _may_apply(pol.get("resource"), m.name, m.family)]
        for ln in self.links:
            if ln["values"].get("?resource", {}).get("id") != model:
                continue
            slots = {k: Entity(v["type"], v["id"]) for k, v in ln["values"].items()}
            out.append((ln["newId"], self.templates[ln["templateId"]], slots))
        named: set = set()
        counts: dict = {}
        literals: dict = {}
        for _pid, pol, slots in out:
            _refs(pol, named)
            named.update(slots.values())
            _attr_uses(pol, counts, literals)
        return out, named, counts, literals


# -- contexts --------------------------------------------------------------------


def _reps(points: Iterable[int], lo: int, hi: int) -> list[int]:
    """One value of every interval that ``points`` cut [lo, hi] into (a point is its own interval)."""
    ps = sorted({p for p in points if lo <= p <= hi})
    out: list[int] = []
    prev = None
    for p in ps:
        start = lo if prev is None else prev + 1
        if start < p:
            out.append(start)
        out.append(p)
        prev = p
    start = lo if prev is None else prev + 1
    if start <= hi:
        out.append(start)
    return out


def _subsets(names: list[str]):
    for r in range(len(names) + 1):
        for c in itertools.combinations(names, r):
            yield frozenset(c)


class _Contexts:
    """Finds a context in which a residual formula holds, trying one context per combination of atoms."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms
        self._memo: dict[Any, Ctx | None] = {}

    def witness(self, formula) -> Ctx | None:
        if formula is False:
            return None
        hit = self._memo.get(formula, 0)
        if hit != 0:
            return hit
        found = self._search(formula)
        self._memo[formula] = found
        return found

    def _search(self, formula) -> Ctx | None:
        at = atoms(formula, set())
        instants, guard, ucs, tools, images = set(), defaultdict(set), set(), set(), False
        for a in at:
            k = a[0]
            if k == "now":
                instants.add(a[2])
            elif k == "g":
                guard[a[1]].add(a[3])
            elif k == "uc":
                ucs.add(a[1])
            elif k in ("tany", "tall"):
                tools.update(a[1])
            elif k == "tempty":
                tools.add("")
            elif k == "img":
                images = True
        unknown = set(guard) - {"jailbreak", *_CHAIN}
        if unknown:
            raise Undecidable(f"guard categories {sorted(unknown)}")
        dims: list[tuple[str, list]] = []
        if images:
            dims.append(("img", [False, True]))
        if "jailbreak" in guard:
            dims.append(("jb", _reps(guard["jailbreak"], 0, 10_000)))
        chain_pts = set().union(*(guard.get(c, set()) for c in _CHAIN))
        if chain_pts:
            reps = _reps(chain_pts, 0, 10_000)
            dims.append(("chain", [(p, h, lo) for p in reps for h in reps if h >= p for lo in reps if lo >= h]))
        names = sorted(n for n in tools if n)
        if tools:
            if len(names) > _MAX_TOOL_NAMES:
                raise Undecidable(f"{len(names)} tool names read together (the checker tries every subset of "
                                  f"at most {_MAX_TOOL_NAMES})")
            dims.append(("tools", list(_subsets(names)) + [frozenset({"another-tool"})]))
        if ucs:
            dims.append(("uc", ["" if "" not in ucs else "another-use-case"] + sorted(ucs)))
        if instants:
            dims.append(("now", [self.now_ms] + sorted(
                {x for b in instants if b >= self.now_ms for x in (b, b + 1)} - {self.now_ms})))
        dims.sort(key=lambda d: len(d[1]))
        found = _dpll(formula, dims, 0, {})
        if found is None:
            return None
        chain = found.get("chain", (0, 0, 0))
        return Ctx(found.get("now", self.now_ms),
                   {"jailbreak": found.get("jb", 0), "cyber_prohibited": chain[0], "cyber_high_risk": chain[1],
                    "cyber_low_risk": chain[2]},
                   found.get("uc", ""), found.get("tools", frozenset()), found.get("img", False))


def _dpll(f, dims: list, i: int, assign: dict) -> dict | None:
    """An assignment of the remaining dimensions that makes ``f`` true, fixing one dimension at a time."""
    if f is True:
        return assign
    if f is False or i == len(dims):
        return None
    name, values = dims[i]
    for v in values:
        g = _subst(f, name, v)
        if g is False:
            continue
        found = _dpll(g, dims, i + 1, {**assign, name: v})
        if found is not None:
            return found
    return None


_CHAIN_INDEX = {c: i for i, c in enumerate(_CHAIN)}


def _subst(f, name: str, v):
    """``f`` with the atoms of one dimension replaced by their value in ``v``, simplified."""
    if f is True or f is False:
        return f
    k = f[0]
    if k == "and":
        a = _subst(f[1], name, v)
        return False if a is False else r_and(a, _subst(f[2], name, v))
    if k == "or":
        a = _subst(f[1], name, v)
        return True if a is True else r_or(a, _subst(f[2], name, v))
    if k == "not":
        return r_not(_subst(f[1], name, v))
    if k == "now":
        return _cmp(v, f[1], f[2]) if name == "now" else f
    if k == "g":
        if name == "jb" and f[1] == "jailbreak":
            return _cmp(v, f[2], f[3])
        if name == "chain" and f[1] in _CHAIN_INDEX:
            return _cmp(v[_CHAIN_INDEX[f[1]]], f[2], f[3])
        return f
    if k == "uc":
        return v == f[1] if name == "uc" else f
    if name == "tools":
        if k == "tany":
            return bool(v & f[1])
        if k == "tall":
            return f[1] <= v
        if k == "tempty":
            return not v
    if k == "img" and name == "img":
        return v
    return f


# -- the check -------------------------------------------------------------------


class InvariantChecker:
    """Checks invariants against one compiled world (build once, check many)."""

    def __init__(self, world: PolicyWorld, engine: PolicyEngine | None = None, now: datetime | None = None) -> None:
        self.engine = engine or build_engine(world)
        self.world = world
        self.now = now or utcnow()
        self.w = _World(world, self.engine)
        self.contexts = _Contexts(epoch_ms(self.now))
        self.users_by_id = {u.id: u for u in world.users}
        self._classes: dict[tuple, list] = {}
        self._residual: dict[tuple, Any] = {}
        self._policy_memo: dict[tuple, Any] = {}
        self.class_count = 0

    # principal classes per model ------------------------------------------------

    def _model_classes(self, model: str, extra: "_Features") -> list[tuple[Any, int, Any]]:
        """[(representative user, users in the class, residual 'allowed' formula per action)] for ``model``."""
        key = (model, extra.key)
        if key in self._classes:
            return self._classes[key]
        policies, named, counts, literals = self.w.slice(model)
        named_users = {e.id for e in named if e.type == _USER} | extra.users
        named_orgs = {e.id for e in named if e.type == _ORG} | extra.orgs
        groups = {e for e in named if e.type == _GROUP} | {Entity(_GROUP, g) for g in extra.groups}
        model_names = {model} | {e.id for e in named if e.type == _MODEL}
        lists = {e for e in named if e.type == _LIST}
        lists |= {Entity(_LIST, f"{m}#{uc}") for m in model_names for uc in set(USE_CASE_ATTRIBUTES) | extra.use_cases}
        lists |= {Entity(_LIST, m) for m in model_names}
        relevant = frozenset(groups | lists)
        read = {a for a in _USER_ATTRS if counts.get(a)} | extra.attrs
        # nationality reduced to the literals it is compared with, when that is its only use
        nat_lits = None
        if "nationality" in read and "nationality" not in extra.attrs:
            lits = literals.get("nationality", set())
            compared = _count_literal_compares(policies, "nationality")
            if compared == counts.get("nationality", 0):
                nat_lits = lits
        org_key = {slug: (slug if slug in named_orgs else None, up & relevant) for slug, up in self.w.org_up.items()}
        classes: dict[tuple, list] = {}
        rd_nat, rd_us, rd_ver = "nationality" in read, "us_person" in read, "verified" in read
        for u in self.world.users:
            nat = (u.nationality if nat_lits is None or u.nationality in nat_lits else None) if rd_nat else None
            k = (u.id if u.id in named_users else None, org_key[u.org], nat,
                 u.us_person if rd_us else None, u.verified if rd_ver else None)
            c = classes.get(k)
            if c is None:
                classes[k] = [u, 1]
            else:
                c[1] += 1
        out = [(u, n, policies) for u, n in classes.values()]
        self._classes[key] = out
        self.class_count += len(out)
        return out

    def _allowed(self, user, model: str, action: str, policies) -> Any:
        """The residual formula under which ``user`` may perform ``action`` on ``model``."""
        key = (user.id, model, action)
        hit = self._residual.get(key)
        if hit is not None:
            return hit
        ev = None
        p, a, r = Entity(_USER, user.id), Entity(_ACTION, action), Entity(_MODEL, model)
        up = self.w.org_up[user.org] | {Entity(_ORG, user.org)}
        permit: Any = False
        forbid: Any = False
        for pid, pol, slots in policies:
            # A policy's residual depends on the caller only through what it reads: memoised on that.
            attrs, relevant, names_user = self.w.reads(pid, pol, slots, model)
            pkey = (pid, model, action, user.id if names_user else None,
                    tuple(getattr(user, x) for x in attrs), up & relevant)
            f = self._policy_memo.get(pkey)
            if f is None:
                if ev is None:
                    ev = Evaluator(_UserAttrs(self.w.attrs, user), _UserAncestors(self.w.parents, self.w.org_up, user))
                f = self._policy_memo[pkey] = ev.policy(pol, p, a, r, slots)
            if f is False:
                continue
            if pol.get("effect") == "forbid":
                forbid = r_or(forbid, f)
            else:
                permit = r_or(permit, f)
        out = r_and(permit, r_not(forbid))
        self._residual[key] = out
        return out

    # invariants --------------------------------------------------------------

    def check(self, invariants: list[Invariant]) -> CheckReport:
        t0 = time.perf_counter()
        extra = _Features.of(invariants)
        results = [self._check_one(inv, extra) for inv in invariants]
        return CheckReport(now=self.now, snapshot_hash=self.engine.hash, results=results,
                           users=len(self.world.users), models=len(self.world.models), classes=self.class_count,
                           seconds=time.perf_counter() - t0)

    def _check_one(self, inv: Invariant, extra: "_Features") -> InvariantResult:
        res = InvariantResult(inv.id, inv.kind, inv.title, "holds")
        if inv.action not in ACTIONS:
            res.status, res.reason = "undecidable", f"unknown action {inv.action!r}"
            return res
        try:
            for m in self.world.models:
                if not inv.resource.matches(m.name, m.family, self.w.attrs.get(Entity(_MODEL, m.name), {})):
                    continue
                for user, n, policies in self._model_classes(m.name, extra):
                    groups = frozenset(e.id for e in self.w.org_up[user.org] if e.type == _GROUP)
                    lists = frozenset(e.id for e in self.w.org_up[user.org] if e.type == _LIST)
                    if not inv.principal.matches(user, groups, lists, m.name):
                        continue
                    res.pairs += 1
                    allowed = self._allowed(user, m.name, inv.action, policies)
                    bad = allowed if inv.kind == "never" else r_not(allowed)
                    ctx = self.contexts.witness(r_and(inv.context, bad))
                    if ctx is not None:
                        res.counterexample = self._confirm(inv, user, n, m.name, ctx)
                        res.status = "violated"
                        return res
        except Undecidable as e:
            res.status = "undecidable"
            res.reason = f"the checker cannot evaluate the policies exactly: {e}"
            res.counterexample = None
        return res

    def _confirm(self, inv: Invariant, user, n: int, model: str, ctx: Ctx) -> Counterexample:
        guard = {c: ctx.guard.get(c, 0) / 10_000 for c in _CHAIN}
        guard["jailbreak"] = ctx.guard.get("jailbreak", 0) / 10_000
        guard["cyber_offense"] = guard["cyber_high_risk"]
        now = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=ctx.now)
        tools = sorted(ctx.tools)
        decision = self.engine.decide(
            Principal(key_id="", user_id=user.id, org_id=user.org, use_case=ctx.use_case), model,
            PolicyContext(now=now, use_case=ctx.use_case, guard=guard, tools=tuple(tools), has_images=ctx.has_images),
            action=inv.action)
        expected = inv.kind == "never"
        if decision.allowed != expected:
            raise Undecidable(f"the engine's decision for {user.id} on {model} differs from the checker's "
                              f"({'allow' if decision.allowed else 'deny'}: {', '.join(decision.reason_ids)})")
        groups = sorted(e.id for e in self.w.org_up[user.org] if e.type == _GROUP)
        return Counterexample(
            user=user.id, org=user.org, model=model, action=inv.action, now=cedar_datetime_ms(ctx.now),
            use_case=ctx.use_case, guard={c: guard[c] for c in GUARD_CATEGORIES}, tools=tools,
            has_images=ctx.has_images, allowed=decision.allowed, reasons=list(decision.reason_ids),
            principal={"nationality": user.nationality, "us_person": user.us_person, "verified": user.verified,
                       "groups": groups},
            class_size=n)


def _count_literal_compares(policies, attr: str) -> int:
    n = 0

    def walk(node):
        nonlocal n
        if isinstance(node, dict):
            for op, body in node.items():
                if op in ("==", "!=") and isinstance(body, dict):
                    for a, b in ((body.get("left"), body.get("right")), (body.get("right"), body.get("left"))):
                        if (isinstance(a, dict) and "." in a and a["."].get("attr") == attr
                                and a["."].get("left") == {"Var": "principal"}
                                and isinstance(b, dict) and isinstance(b.get("Value"), str)):
                            n += 1
                walk(body)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for _pid, pol, _slots in policies:
        walk(pol)
    return n


class _UserAttrs(dict):
    """Entity attributes with one user's own added (users are evaluated one at a time)."""

    def __init__(self, base: dict, user) -> None:
        super().__init__()
        self.base = base
        self.user_ent = Entity(_USER, user.id)
        self.user_attrs = {"nationality": user.nationality, "us_person": user.us_person, "verified": user.verified}

    def get(self, key, default=None):
        if key == self.user_ent:
            return self.user_attrs
        return self.base.get(key, default)


class _UserAncestors(dict):
    def __init__(self, parents: dict, org_up: dict, user) -> None:
        super().__init__()
        self.parents = parents
        self.user_ent = Entity(_USER, user.id)
        self.user_up = org_up[user.org] | {Entity(_ORG, user.org)}
        self.org_up = org_up
        self._cache: dict = {}

    def get(self, key, default=None):
        if key == self.user_ent:
            return self.user_up
        if key.type == _ORG and key.id in self.org_up:
            return self.org_up[key.id]
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = _World._closure(key, self.parents)
        return hit


@dataclass(frozen=True)
class _Features:
    """What the invariants' principal tests read, so classes keep those apart."""

    users: frozenset = frozenset()
    orgs: frozenset = frozenset()
    groups: frozenset = frozenset()
    attrs: frozenset = frozenset()
    use_cases: frozenset = frozenset()

    @property
    def key(self) -> tuple:
        return (self.users, self.orgs, self.groups, self.attrs, self.use_cases)

    @classmethod
    def of(cls, invariants: list[Invariant]) -> "_Features":
        users, orgs, groups, attrs, ucs = set(), set(), set(), set(), set()
        for inv in invariants:
            for s in inv.principal.walk():
                if s.op == "user":
                    users |= s.args
                elif s.op == "org":
                    orgs |= s.args
                elif s.op == "group":
                    groups |= s.args
                elif s.op in ("nationality", "us_person", "verified"):
                    attrs.add(s.op)
                elif s.op == "approved" and s.args:
                    ucs.add(s.args)
        return cls(frozenset(users), frozenset(orgs), frozenset(groups), frozenset(attrs), frozenset(ucs))


def check_invariants(world: PolicyWorld, invariants: list[Invariant], *, now: datetime | None = None,
                     engine: PolicyEngine | None = None) -> CheckReport:
    """Check ``invariants`` against ``world`` at ``now`` (default: the current time) and after."""
    return InvariantChecker(world, engine=engine, now=now).check(invariants)


__all__ = ["CheckReport", "Counterexample", "InvariantChecker", "InvariantResult", "check_invariants", "DT"]

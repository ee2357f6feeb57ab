"""Partial evaluation of compiled Cedar policies: a known principal and model, a symbolic request context.

The invariant checker (``check.py``) needs every decision a caller could get
on a model, whatever the prompt's scores, the time or the tools offered.  It
evaluates each policy of the model's slice (Cedar's JSON form, as compiled by
``engine.build_engine``) with the principal, action and resource fixed and the
context left symbolic.  What is left is a *residual*: a boolean formula over
context atoms, in a small tuple form:

* ``("now", op, ms)``: ``context.now op datetime(ms)``
* ``("g", category, op, units)``: a guard score compared with a decimal (ten-thousandths);
  ``cyber_offense`` is read as ``cyber_high_risk``, which it always equals once scores
  are read fail closed (``guard.context.policy_scores``)
* ``("uc", text)``: ``context.use_case == text``
* ``("tany", names)`` / ``("tall", names)`` / ``("tempty",)``: ``context.tools``
  containsAny / containsAll / isEmpty
* ``("img",)``: ``context.has_images``
* ``("not", x)``, ``("and", a, b)``, ``("or", a, b)``, and ``True`` / ``False``.

Anything outside this fragment (arithmetic, ``like`` on the use case, the context
used as a whole, an attribute of an entity missing from the store, ...) raises
``Undecidable``: the checker then refuses to vouch for the policies (fail closed).
Cedar raises no type errors on schema-validated policies, so the evaluator
treats a type it does not expect as undecidable too, rather than guessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from clearance.policy.analysis import decimal_units
from clearance.policy.clock import parse_cedar_datetime

CYBER_ALIASES = {"cyber_offense": "cyber_high_risk"}
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_METHODS = {"lessThan": "<", "lessThanOrEqual": "<=", "greaterThan": ">", "greaterThanOrEqual": ">="}


class Undecidable(Exception):
    """A policy uses Cedar beyond what the checker can evaluate exactly; the message says what."""


@dataclass(frozen=True, slots=True)
class Entity:
    type: str
    id: str


@dataclass(frozen=True, slots=True)
class Dec:
    units: int


@dataclass(frozen=True, slots=True)
class DT:
    ms: int


@dataclass(frozen=True, slots=True)
class Sym:
    """A symbolic part of the context: ``now``, ``use_case``, ``tools``, ``guard`` or ``guard:<category>``."""

    kind: str


# -- residual formulas ---------------------------------------------------------


def r_not(a):
    if a is True:
        return False
    if a is False:
        return True
    if isinstance(a, tuple) and a[0] == "not":
        return a[1]
    return ("not", a)


def r_and(a, b):
    if a is False or b is False:
        return False
    if a is True:
        return b
    if b is True:
        return a
    return ("and", a, b)


def r_or(a, b):
    if a is True or b is True:
        return True
    if a is False:
        return b
    if b is False:
        return a
    return ("or", a, b)


def holds(f, ctx: "Ctx") -> bool:
    """The value of a residual formula in a concrete context."""
    if f is True or f is False:
        return f
    k = f[0]
    if k == "and":
        return holds(f[1], ctx) and holds(f[2], ctx)
    if k == "or":
        return holds(f[1], ctx) or holds(f[2], ctx)
    if k == "not":
        return not holds(f[1], ctx)
    if k == "now":
        return _cmp(ctx.now, f[1], f[2])
    if k == "g":
        return _cmp(ctx.guard[f[1]], f[2], f[3])
    if k == "uc":
        return ctx.use_case == f[1]
    if k == "tany":
        return bool(ctx.tools & f[1])
    if k == "tall":
        return f[1] <= ctx.tools
    if k == "tempty":
        return not ctx.tools
    if k == "img":
        return ctx.has_images
    raise Undecidable(f"unknown residual {k!r}")


def atoms(f, out: set) -> set:
    """Every atom of a residual formula, added to ``out``."""
    if f is True or f is False:
        return out
    if f[0] in ("and", "or"):
        atoms(f[1], out)
        atoms(f[2], out)
    elif f[0] == "not":
        atoms(f[1], out)
    else:
        out.add(f)
    return out


@dataclass(frozen=True, slots=True)
class Ctx:
    """A concrete request context: epoch ms, guard scores in ten-thousandths, use case, tools, images."""

    now: int
    guard: Mapping[str, int]
    use_case: str
    tools: frozenset
    has_images: bool


def _cmp(a, op: str, b) -> bool:
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    if op == ">=":
        return a >= b
    if op == "==":
        return a == b
    if op == "!=":
        return a != b
    raise Undecidable(f"comparison {op!r}")


# -- the evaluator -------------------------------------------------------------


class Evaluator:
    """Evaluates policies for one (principal, action, resource) over the store's entities.

    ``attrs`` maps an ``Entity`` to its attributes (already converted: entity
    references as ``Entity``), ``ancestors`` maps an ``Entity`` to the set of
    every entity it is transitively ``in``.
    """

    def __init__(self, attrs: Mapping[Entity, Mapping[str, Any]], ancestors: Mapping[Entity, frozenset]) -> None:
        self.attrs = attrs
        self.ancestors = ancestors

    def policy(self, pol: dict, principal: Entity, action: Entity, resource: Entity,
               slots: Mapping[str, Entity] | None = None):
        """The residual condition under which ``pol`` applies to this request."""
        env = {"principal": principal, "action": action, "resource": resource}
        slots = slots or {}
        f = r_and(self._scope(pol.get("principal"), principal, slots),
                  r_and(self._scope(pol.get("action"), action, slots), self._scope(pol.get("resource"), resource, slots)))
        for cond in pol.get("conditions") or []:
            if f is False:
                return False
            body = self._bool(self.eval(cond["body"], env, slots))
            f = r_and(f, body if cond["kind"] == "when" else r_not(body))
        return f

    # scopes ---------------------------------------------------------------

    def _in(self, a: Entity, b: Entity) -> bool:
        return a == b or b in self.ancestors.get(a, ())

    def _scope(self, scope: dict | None, ent: Entity, slots) -> bool:
        if not scope or scope.get("op") == "All":
            return True
        op = scope["op"]
        target = None
        if "entity" in scope:
            target = _entity(scope["entity"])
        elif "slot" in scope:
            target = slots.get(scope["slot"])
            if target is None:
                raise Undecidable(f"unlinked slot {scope['slot']}")
        if op == "==":
            return ent == target
        if op == "in":
            if "entities" in scope:
                return any(self._in(ent, _entity(e)) for e in scope["entities"])
            return self._in(ent, target)
        if op == "is":
            if not _same_type(ent.type, scope["entity_type"]):
                return False
            if "in" in scope:
                return self._scope({"op": "in", **scope["in"]}, ent, slots)
            return True
        raise Undecidable(f"scope operator {op!r}")

    # expressions ----------------------------------------------------------

    @staticmethod
    def _bool(v):
        if v is True or v is False or isinstance(v, tuple):
            return v
        raise Undecidable("a condition that is not a boolean")

    def eval(self, node: Any, env: dict, slots) -> Any:
        if not isinstance(node, dict) or len(node) != 1:
            raise Undecidable("malformed expression")
        (op, body), = node.items()
        if op == "Value":
            return _value(body)
        if op == "Var":
            if body == "context":
                return Sym("context")
            return env[body]
        if op == "Slot":
            if body not in slots:
                raise Undecidable(f"unlinked slot {body}")
            return slots[body]
        if op == "&&":
            a = self._bool(self.eval(body["left"], env, slots))
            if a is False:
                return False
            return r_and(a, self._bool(self.eval(body["right"], env, slots)))
        if op == "||":
            a = self._bool(self.eval(body["left"], env, slots))
            if a is True:
                return True
            return r_or(a, self._bool(self.eval(body["right"], env, slots)))
        if op == "!":
            return r_not(self._bool(self.eval(body["arg"], env, slots)))
        if op == "if-then-else":
            c = self._bool(self.eval(body["if"], env, slots))
            if c is True:
                return self.eval(body["then"], env, slots)
            if c is False:
                return self.eval(body["else"], env, slots)
            t = self._bool(self.eval(body["then"], env, slots))
            e = self._bool(self.eval(body["else"], env, slots))
            return r_or(r_and(c, t), r_and(r_not(c), e))
        if op == ".":
            return self._attr(self.eval(body["left"], env, slots), body["attr"])
        if op == "has":
            left = self.eval(body["left"], env, slots)
            if isinstance(left, Sym):
                if left.kind in ("context", "guard"):
                    return True  # every context key and guard score is always present
                raise Undecidable("`has` on a context value")
            if isinstance(left, Entity):
                return body["attr"] in self.attrs.get(left, {})
            if isinstance(left, dict):
                return body["attr"] in left
            raise Undecidable("`has` on a value that is not a record")
        if op in ("==", "!=", "<", "<=", ">", ">="):
            return self._compare(op, self.eval(body["left"], env, slots), self.eval(body["right"], env, slots))
        if op in _METHODS:
            if not isinstance(body, list) or len(body) != 2:
                raise Undecidable(f"{op} with {body!r}")
            return self._compare(_METHODS[op], self.eval(body[0], env, slots), self.eval(body[1], env, slots))
        if op == "in":
            a = self.eval(body["left"], env, slots)
            b = self.eval(body["right"], env, slots)
            if not isinstance(a, Entity):
                raise Undecidable("`in` on a value that is not an entity")
            if isinstance(b, Entity):
                return self._in(a, b)
            if isinstance(b, frozenset) and all(isinstance(x, Entity) for x in b):
                return any(self._in(a, x) for x in b)
            raise Undecidable("`in` on a value that is not an entity or a set of entities")
        if op in ("contains", "containsAll", "containsAny"):
            a = self.eval(body["left"], env, slots)
            b = self.eval(body["right"], env, slots)
            if isinstance(a, Sym):
                if a.kind != "tools":
                    raise Undecidable(f"`{op}` on context.{a.kind}")
                names = frozenset([b]) if op == "contains" else b
                if not isinstance(names, frozenset) or not all(isinstance(x, str) for x in names):
                    raise Undecidable(f"`{op}` on context.tools with a value that is not a literal string set")
                if op == "containsAll":
                    return ("tall", names) if names else True
                return ("tany", names) if names else False
            if not isinstance(a, frozenset):
                raise Undecidable(f"`{op}` on a value that is not a set")
            if isinstance(b, Sym):
                # ["a", "b"].contains(context.use_case); ["x"].containsAny(context.tools) (symmetric)
                if op == "contains" and b.kind == "use_case" and all(isinstance(x, str) for x in a):
                    f: Any = False
                    for x in sorted(a):
                        f = r_or(f, ("uc", x))
                    return f
                if op == "containsAny" and b.kind == "tools" and all(isinstance(x, str) for x in a):
                    return ("tany", a) if a else False
                raise Undecidable(f"`{op}` with a context value as argument")
            if op == "contains":
                return b in a
            if not isinstance(b, frozenset):
                raise Undecidable(f"`{op}` with a value that is not a set")
            return b <= a if op == "containsAll" else bool(a & b)
        if op == "isEmpty":
            a = self.eval(body["arg"], env, slots)
            if isinstance(a, Sym) and a.kind == "tools":
                return ("tempty",)
            if isinstance(a, frozenset):
                return not a
            raise Undecidable("`isEmpty` on a value that is not a set")
        if op == "is":
            a = self.eval(body["left"], env, slots)
            if not isinstance(a, Entity):
                raise Undecidable("`is` on a value that is not an entity")
            ok = _same_type(a.type, body["entity_type"])
            if ok and "in" in body:
                return self.eval({"in": {"left": body["left"], "right": body["in"]}}, env, slots)
            return ok
        if op == "Set":
            items = [self.eval(x, env, slots) for x in body]
            if any(isinstance(x, (Sym, tuple)) for x in items):
                raise Undecidable("a set built from context values")
            return frozenset(items)
        if op == "Record":
            vals = {k: self.eval(v, env, slots) for k, v in body.items()}
            if any(isinstance(x, (Sym, tuple)) for x in vals.values()):
                raise Undecidable("a record built from context values")
            return vals
        if op == "decimal" or op == "datetime":
            if not isinstance(body, list) or len(body) != 1:
                raise Undecidable(f"{op}() with {body!r}")
            arg = self.eval(body[0], env, slots)
            if not isinstance(arg, str):
                raise Undecidable(f"{op}() of a value that is not a literal string")
            if op == "decimal":
                u = decimal_units(arg)
                if u is None:
                    raise Undecidable(f"decimal literal {arg!r}")
                return Dec(u)
            ms = parse_cedar_datetime(arg)
            if ms is None:
                raise Undecidable(f"datetime literal {arg!r}")
            return DT(ms)
        raise Undecidable(f"the operator `{op}`")

    def _attr(self, left: Any, attr: str) -> Any:
        if isinstance(left, Sym):
            if left.kind == "context":
                if attr == "guard":
                    return Sym("guard")
                if attr in ("now", "use_case", "tools"):
                    return Sym(attr)
                if attr == "has_images":
                    return ("img",)
                raise Undecidable(f"context.{attr}")
            if left.kind == "guard":
                return Sym("guard:" + CYBER_ALIASES.get(attr, attr))
            raise Undecidable(f"an attribute of context.{left.kind}")
        if isinstance(left, Entity):
            a = self.attrs.get(left)
            if a is None or attr not in a:
                raise Undecidable(f"attribute {attr} of {left.type}::{left.id!r}, which the store does not hold")
            return a[attr]
        if isinstance(left, dict):
            if attr not in left:
                raise Undecidable(f"record attribute {attr}")
            return left[attr]
        raise Undecidable(f"attribute {attr} of a value that is not an entity or record")

    def _compare(self, op: str, a: Any, b: Any):
        if isinstance(b, Sym) and not isinstance(a, Sym):
            a, b, op = b, a, _FLIP[op]
        if isinstance(a, Sym):
            if isinstance(b, Sym):
                raise Undecidable("two context values compared with each other")
            if a.kind == "now" and isinstance(b, DT):
                return ("now", op, b.ms)
            if a.kind.startswith("guard:") and isinstance(b, Dec):
                return ("g", a.kind[6:], op, b.units)
            if a.kind == "use_case" and isinstance(b, str) and op in ("==", "!="):
                f = ("uc", b)
                return f if op == "==" else r_not(f)
            raise Undecidable(f"context.{a.kind} compared with {op}")
        if isinstance(a, tuple) or isinstance(b, tuple):
            if op in ("==", "!=") and (isinstance(a, bool) or isinstance(b, bool)):
                x, y = (a, b) if isinstance(b, bool) else (b, a)  # x: the residual
                f = x if y else r_not(x)
                return f if op == "==" else r_not(f)
            raise Undecidable("context.has_images compared in an unsupported way")
        if op == "==":
            return a == b and type(a) is type(b)
        if op == "!=":
            return not (a == b and type(a) is type(b))
        if type(a) is not type(b) or isinstance(a, (bool, str, Entity, frozenset, dict)):
            raise Undecidable(f"`{op}` on values of these types")
        x, y = (a.units, b.units) if isinstance(a, Dec) else (a.ms, b.ms) if isinstance(a, DT) else (a, b)
        return _cmp(x, op, y)


def _same_type(t: str, wanted: str) -> bool:
    return t == wanted or t.split("::")[-1] == wanted


def _entity(d: dict) -> Entity:
    return Entity(d["type"], d["id"])


def _value(v: Any) -> Any:
    if isinstance(v, bool) or isinstance(v, str):
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, dict):
        if "__entity" in v:
            return _entity(v["__entity"])
        if "__extn" in v:
            ext = v["__extn"]
            fn, arg = ext.get("fn"), ext.get("arg")
            if fn == "decimal":
                u = decimal_units(arg)
                if u is not None:
                    return Dec(u)
            if fn == "datetime":
                ms = parse_cedar_datetime(arg)
                if ms is not None:
                    return DT(ms)
            raise Undecidable(f"extension value {fn}")
        if "type" in v and "id" in v and len(v) == 2:
            return _entity(v)
        return {k: _value(x) for k, x in v.items()}
    if isinstance(v, list):
        return frozenset(_value(x) for x in v)
    raise Undecidable(f"literal {v!r}")


def convert_attr(v: Any) -> Any:
    """An attribute value of the entity store's JSON form, as the evaluator holds it."""
    return _value(v)

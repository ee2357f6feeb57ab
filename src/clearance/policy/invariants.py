"""Policy invariants: assertions an organisation commits to, read from a YAML file.

Each entry has an ``id``, an optional ``title``, and exactly one of ``never`` or
``always``, a pattern of requests:

.. code-block:: yaml

    - id: prohibited-cyber-always-refused
      never: {action: invoke, context: {guard: {cyber_prohibited: ">= 0.5"}}}
    - id: evaluators-keep-general
      always:
        resource: frontier-general
        principal: {org: standards-lab}
        context: {guard: {jailbreak: "< 0.5"}}

``never``: no request matching the pattern is allowed.  ``always``: every
request matching it is allowed.  A pattern has (all optional; absent means any):

* ``action``: ``invoke`` (default) or ``list``;
* ``resource``: a model name, a list of names, or a mapping of ``model``,
  ``family`` and model attributes (``cyber_capable``, ``approval_required``,
  ``self_hosted``: booleans);
* ``principal``: a mapping whose keys must all hold: ``user``, ``org``,
  ``nationality`` (a value or a list), ``group`` (the org is in one of these
  groups), ``us_person``, ``verified`` (booleans), ``approved`` (the org is
  approved for the model: ``true``, or a use case such as
  ``security-testing``), ``not`` (a mapping that must not hold) and ``any``
  (a list of mappings, one of which must hold);
* ``context``: ``guard`` (category to a comparison such as ``">= 0.5"``, or a
  list of them), ``use_case`` (a value or a list), ``tools`` (``none``, or a
  list of names of which at least one is offered), ``has_images`` (boolean)
  and ``now`` (``{from, until}`` instants).

``load_invariants`` turns the file into ``Invariant`` values or raises
``InvariantError`` naming the entry and the problem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from clearance.guard.base import CATEGORIES as GUARD_CATEGORIES
from clearance.policy.analysis import decimal_units
from clearance.policy.clock import epoch_ms, parse_instant
from clearance.policy.partial import CYBER_ALIASES, r_and, r_not, r_or

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CMP = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*([0-9]*\.?[0-9]+)\s*$")
_PRINCIPAL_KEYS = ("user", "org", "nationality", "group", "us_person", "verified", "approved", "not", "any")
_RESOURCE_KEYS = ("model", "family", "cyber_capable", "approval_required", "self_hosted")
_CONTEXT_KEYS = ("guard", "use_case", "tools", "has_images", "now")
_ACTIONS = ("invoke", "list")


class InvariantError(ValueError):
    """An invariants file that cannot be read or does not say something checkable."""


@dataclass(frozen=True)
class PrincipalSel:
    """A test on a caller: ``op`` is ``all``/``any``/``not``/``user``/``org``/``nationality``/``group``/...

    ``args`` holds the values (a frozenset) or the nested selectors.
    """

    op: str
    args: Any = None

    def matches(self, user, groups: frozenset, lists: frozenset, model: str) -> bool:
        op, a = self.op, self.args
        if op == "all":
            return all(s.matches(user, groups, lists, model) for s in a)
        if op == "any":
            return any(s.matches(user, groups, lists, model) for s in a)
        if op == "not":
            return not a.matches(user, groups, lists, model)
        if op == "user":
            return user.id in a
        if op == "org":
            return user.org in a
        if op == "nationality":
            return user.nationality in a
        if op == "group":
            return bool(groups & a)
        if op in ("us_person", "verified"):
            return getattr(user, op) == a
        if op == "approved":
            return (model if a == "" else f"{model}#{a}") in lists
        raise InvariantError(f"unknown principal test {op!r}")

    def walk(self):
        yield self
        if self.op in ("all", "any"):
            for s in self.args:
                yield from s.walk()
        elif self.op == "not":
            yield from self.args.walk()


@dataclass(frozen=True)
class ResourceSel:
    models: frozenset | None = None
    families: frozenset | None = None
    attributes: tuple[tuple[str, bool], ...] = ()

    def matches(self, name: str, family: str, attributes: dict) -> bool:
        if self.models is not None and name not in self.models:
            return False
        if self.families is not None and family not in self.families:
            return False
        return all(bool(attributes.get(k, False)) == v for k, v in self.attributes)


@dataclass(frozen=True)
class Invariant:
    id: str
    kind: str  # "never" | "always"
    title: str = ""
    action: str = "invoke"
    principal: PrincipalSel = field(default_factory=lambda: PrincipalSel("all", ()))
    resource: ResourceSel = field(default_factory=ResourceSel)
    context: Any = True  # a residual formula over context atoms (see partial.py)
    text: dict = field(default_factory=dict, compare=False)  # the entry as written

    @property
    def statement(self) -> str:
        return self.title or self.id


def load_invariants(path: str | Path) -> list[Invariant]:
    """Read and check an invariants file; raises ``InvariantError``."""
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise InvariantError(f"cannot read invariants file {p}: {e.strerror or e}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise InvariantError(f"invariants file {p} is not valid YAML: {e}") from None
    return parse_invariants(raw, str(p))


def parse_invariants(raw: Any, source: str = "invariants") -> list[Invariant]:
    if raw is None:
        raw = []
    if isinstance(raw, dict) and "invariants" in raw:
        raw = raw["invariants"]
    if not isinstance(raw, list):
        raise InvariantError(f"{source}: expected a list of invariants")
    out: list[Invariant] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw, 1):
        where = f"{source}: invariant #{i}"
        if not isinstance(entry, dict):
            raise InvariantError(f"{where}: expected a mapping with id and never/always")
        iid = entry.get("id")
        if not isinstance(iid, str) or not _ID.match(iid):
            raise InvariantError(f"{where}: 'id' must be 1-64 letters, digits, '.', '_' or '-'")
        where = f"{source}: invariant {iid!r}"
        if iid in seen:
            raise InvariantError(f"{where}: the id is used twice")
        seen.add(iid)
        unknown = sorted(set(entry) - {"id", "title", "never", "always"})
        if unknown:
            raise InvariantError(f"{where}: unknown keys {unknown}")
        kinds = [k for k in ("never", "always") if k in entry]
        if len(kinds) != 1:
            raise InvariantError(f"{where}: needs exactly one of 'never' or 'always'")
        kind = kinds[0]
        title = entry.get("title", "")
        if not isinstance(title, str):
            raise InvariantError(f"{where}: 'title' must be a string")
        body = entry[kind] if entry[kind] is not None else {}
        if not isinstance(body, dict):
            raise InvariantError(f"{where}: '{kind}' must be a mapping")
        unknown = sorted(set(body) - {"action", "principal", "resource", "context"})
        if unknown:
            raise InvariantError(f"{where}: unknown keys {unknown} in '{kind}' "
                                 "(expected action, principal, resource, context)")
        action = body.get("action", "invoke")
        if action not in _ACTIONS:
            raise InvariantError(f"{where}: action must be one of {list(_ACTIONS)}")
        try:
            out.append(Invariant(
                id=iid, kind=kind, title=title.strip(), action=action,
                principal=_principal(body.get("principal")), resource=_resource(body.get("resource")),
                context=_context(body.get("context")), text=dict(entry),
            ))
        except InvariantError as e:
            raise InvariantError(f"{where}: {e}") from None
    return out


def _strings(v: Any, what: str) -> frozenset:
    vals = v if isinstance(v, list) else [v]
    if not vals or not all(isinstance(x, str) for x in vals):
        raise InvariantError(f"{what} must be a string or a list of strings")
    return frozenset(vals)


def _bool(v: Any, what: str) -> bool:
    if not isinstance(v, bool):
        raise InvariantError(f"{what} must be true or false")
    return v


def _principal(v: Any) -> PrincipalSel:
    if v is None:
        return PrincipalSel("all", ())
    if not isinstance(v, dict):
        raise InvariantError("'principal' must be a mapping")
    unknown = sorted(set(v) - set(_PRINCIPAL_KEYS))
    if unknown:
        raise InvariantError(f"unknown principal keys {unknown} (expected {list(_PRINCIPAL_KEYS)})")
    parts: list[PrincipalSel] = []
    for k, x in v.items():
        if k in ("user", "org", "nationality", "group"):
            parts.append(PrincipalSel(k, _strings(x, f"principal.{k}")))
        elif k in ("us_person", "verified"):
            parts.append(PrincipalSel(k, _bool(x, f"principal.{k}")))
        elif k == "approved":
            if x is True:
                parts.append(PrincipalSel("approved", ""))
            elif isinstance(x, str) and x:
                parts.append(PrincipalSel("approved", x))
            else:
                raise InvariantError("principal.approved must be true or a use case such as security-testing")
        elif k == "not":
            parts.append(PrincipalSel("not", _principal(x)))
        elif k == "any":
            if not isinstance(x, list) or not x:
                raise InvariantError("principal.any must be a non-empty list of mappings")
            parts.append(PrincipalSel("any", tuple(_principal(y) for y in x)))
    return PrincipalSel("all", tuple(parts))


def _resource(v: Any) -> ResourceSel:
    if v is None:
        return ResourceSel()
    if isinstance(v, (str, list)):
        return ResourceSel(models=_strings(v, "resource"))
    if not isinstance(v, dict):
        raise InvariantError("'resource' must be a model name, a list of names or a mapping")
    unknown = sorted(set(v) - set(_RESOURCE_KEYS))
    if unknown:
        raise InvariantError(f"unknown resource keys {unknown} (expected {list(_RESOURCE_KEYS)})")
    return ResourceSel(
        models=_strings(v["model"], "resource.model") if "model" in v else None,
        families=_strings(v["family"], "resource.family") if "family" in v else None,
        attributes=tuple((k, _bool(v[k], f"resource.{k}")) for k in _RESOURCE_KEYS[2:] if k in v),
    )


def _guard_test(cat: str, text: Any):
    if not isinstance(text, str):
        raise InvariantError(f"context.guard.{cat} must be a comparison such as \">= 0.5\"")
    m = _CMP.match(text)
    units = decimal_units(m.group(2) if m and "." in m.group(2) else (m.group(2) + ".0") if m else "")
    if m is None or units is None or not 0 <= units <= 10_000:
        raise InvariantError(f"context.guard.{cat}: {text!r} is not a comparison with a score in 0..1 "
                             "(four decimal places at most), such as \">= 0.5\"")
    return ("g", CYBER_ALIASES.get(cat, cat), m.group(1), units)


def _context(v: Any):
    if v is None:
        return True
    if not isinstance(v, dict):
        raise InvariantError("'context' must be a mapping")
    unknown = sorted(set(v) - set(_CONTEXT_KEYS))
    if unknown:
        raise InvariantError(f"unknown context keys {unknown} (expected {list(_CONTEXT_KEYS)})")
    f: Any = True
    guard = v.get("guard") or {}
    if not isinstance(guard, dict):
        raise InvariantError("context.guard must be a mapping of category to comparison")
    for cat, tests in guard.items():
        if cat not in GUARD_CATEGORIES:
            raise InvariantError(f"unknown guard category {cat!r} (expected one of {list(GUARD_CATEGORIES)})")
        for t in tests if isinstance(tests, list) else [tests]:
            f = r_and(f, _guard_test(cat, t))
    if "use_case" in v:
        g: Any = False
        for uc in sorted(_strings(v["use_case"], "context.use_case")):
            g = r_or(g, ("uc", uc))
        f = r_and(f, g)
    if "tools" in v:
        t = v["tools"]
        if t == "none" or t == []:
            f = r_and(f, ("tempty",))
        else:
            f = r_and(f, ("tany", _strings(t, "context.tools")))
    if "has_images" in v:
        f = r_and(f, ("img",) if _bool(v["has_images"], "context.has_images") else r_not(("img",)))
    if "now" in v:
        w = v["now"]
        if not isinstance(w, dict) or not w or set(w) - {"from", "until"}:
            raise InvariantError("context.now must be a mapping with 'from' and/or 'until' instants")
        for k, op in (("from", ">="), ("until", "<")):
            if k in w:
                try:
                    ms = epoch_ms(parse_instant(str(w[k])))
                except ValueError as e:
                    raise InvariantError(f"context.now.{k}: {e}") from None
                f = r_and(f, ("now", op, ms))
    return f

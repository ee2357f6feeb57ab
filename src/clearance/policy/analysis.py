"""How a compiled policy set reads the request context, to key a decision cache safely.

A decision depends on ``context.now`` and ``context.guard.*`` only through the
comparisons the policies make.  When every use of ``context.now`` compares it
with a ``datetime("...")`` literal and every use of a guard score compares it
with a ``decimal("...")`` literal, two requests whose ``now`` and scores fall
between the same literals (and equal the same ones) get the same decision.
``context_breakpoints`` finds those literals; if any policy uses the context
in another way it returns ``None`` and decisions are not cached.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from typing import Any, Iterable

from clearance.policy.clock import parse_cedar_datetime

_COMPARE_OPS = ("==", "!=", "<", "<=", ">", ">=")
_DECIMAL_METHODS = ("lessThan", "lessThanOrEqual", "greaterThan", "greaterThanOrEqual")
# Context attributes the cache key holds exactly when a model's policies read them.
_CONTEXT_SAFE_ATTRS = ("use_case", "tools", "has_images")


@dataclass(frozen=True, slots=True)
class Breakpoints:
    """The literals the policies compare the context against.

    ``instants`` are epoch milliseconds; ``thresholds`` map a guard category to
    scores in ten-thousandths (Cedar decimals have four digits).
    """

    instants: tuple[int, ...]
    thresholds: dict[str, tuple[int, ...]]
    # The exactly-keyed attributes (of ``_CONTEXT_SAFE_ATTRS``) the policies read.
    reads: frozenset[str] = frozenset()

    def now_bucket(self, now_ms: int) -> int:
        return _bucket(self.instants, now_ms)

    def guard_bucket(self, category: str, score: int) -> int:
        return _bucket(self.thresholds.get(category, ()), score)


def _bucket(points: tuple[int, ...], v: int) -> int:
    """Which interval of ``points`` holds ``v``; equal to a point is its own interval."""
    i = bisect_left(points, v)
    return 2 * i + 1 if i < len(points) and points[i] == v else 2 * i


def decimal_units(text: str) -> int | None:
    """A Cedar decimal literal in ten-thousandths, or ``None`` if malformed."""
    neg = text.startswith("-")
    whole, _, frac = text.lstrip("-").partition(".")
    if not whole.isdigit() or not frac.isdigit() or len(frac) > 4:
        return None
    v = int(whole) * 10_000 + int(frac.ljust(4, "0"))
    return -v if neg else v


def _is_context_attr(node: Any, attr: str) -> bool:
    return (
        isinstance(node, dict) and "." in node
        and node["."].get("attr") == attr and node["."].get("left") == {"Var": "context"}
    )


def _guard_category(node: Any) -> str | None:
    if isinstance(node, dict) and "." in node and _is_context_attr(node["."].get("left"), "guard"):
        return node["."]["attr"]
    return None


def _literal(node: Any, fn: str) -> str | None:
    if isinstance(node, dict) and fn in node:
        args = node[fn]
        if isinstance(args, list) and len(args) == 1 and isinstance(args[0], dict):
            v = args[0].get("Value")
            return v if isinstance(v, str) else None
    return None


class _Unsafe(Exception):
    pass


def context_breakpoints(policies: Iterable[dict]) -> Breakpoints | None:
    """The context breakpoints of these JSON-form policies, or ``None`` if caching is unsafe."""
    instants: set[int] = set()
    thresholds: dict[str, set[int]] = {}
    reads: set[str] = set()

    def pair(a: Any, b: Any, op: str) -> bool:
        """Record a (context value, literal) comparison; True if it was one."""
        for x, y in ((a, b), (b, a)):
            if _is_context_attr(x, "now") and op in _COMPARE_OPS:
                lit = _literal(y, "datetime")
                ms = parse_cedar_datetime(lit) if lit is not None else None
                if ms is None:
                    raise _Unsafe
                instants.add(ms)
                return True
            cat = _guard_category(x)
            if cat is not None:
                lit = _literal(y, "decimal")
                units = decimal_units(lit) if lit is not None else None
                if units is None:
                    raise _Unsafe
                thresholds.setdefault(cat, set()).add(units)
                return True
        return False

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for x in node:
                walk(x)
            return
        if not isinstance(node, dict):
            return
        for op, body in node.items():
            if op == "Var":
                if body == "context":
                    raise _Unsafe  # the context used as a whole
                continue
            if op in ("Value", "Slot"):
                continue
            if op == "." and body.get("left") == {"Var": "context"}:
                if body.get("attr") in _CONTEXT_SAFE_ATTRS:
                    reads.add(body["attr"])
                    continue
                raise _Unsafe
            if op == "has" and body.get("left") == {"Var": "context"}:
                continue  # every key is always present
            if op in _COMPARE_OPS and pair(body["left"], body["right"], op):
                continue
            if op in _DECIMAL_METHODS and isinstance(body, list) and len(body) == 2 and pair(body[0], body[1], "<"):
                continue
            if isinstance(body, list):
                walk(body)
            elif op == "Record" and isinstance(body, dict):
                walk(list(body.values()))
            elif isinstance(body, dict):
                walk([body[k] for k in ("left", "right", "arg", "if", "then", "else") if k in body])

    try:
        for pol in policies:
            for cond in pol.get("conditions", []):
                walk(cond["body"])
    except _Unsafe:
        return None
    return Breakpoints(
        instants=tuple(sorted(instants)),
        thresholds={k: tuple(sorted(v)) for k, v in thresholds.items()},
        reads=frozenset(reads),
    )

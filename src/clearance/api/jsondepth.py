"""How deeply a parsed JSON document nests, checked cheaply before anything else reads it.

A request nested a few hundred levels deep parses (orjson allows 1024) but
cannot be forwarded: orjson refuses to encode more than 254 levels, and every
recursive reader after the parser is at risk.  ``too_deep`` answers whether a
parsed body nests beyond a limit.  A body with no more brackets than the limit
cannot nest beyond it, so the walk (over containers only, without recursion)
runs only for bodies with many brackets.
"""

from __future__ import annotations


def too_deep(raw: bytes, parsed: object, limit: int) -> bool:
    """True when ``parsed`` (the JSON document ``raw``) has containers nested more than ``limit`` deep."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    return depth_exceeds(parsed, limit)


def depth_exceeds(obj: object, limit: int) -> bool:
    """True when ``obj`` has dicts or lists nested more than ``limit`` deep (a bare ``{}`` is depth 1)."""
    t = type(obj)
    if t is not dict and t is not list:
        return False
    stack = [(obj, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        o, d = pop()
        if d > limit:
            return True
        for child in (o.values() if type(o) is dict else o):
            ct = type(child)
            if ct is dict or ct is list:
                push((child, d + 1))
    return False

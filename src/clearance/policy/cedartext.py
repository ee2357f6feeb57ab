"""Cedar policy text: the shipped schema, parsing, validation with line and column, and the fail-open check.

Everything here runs when policy text is accepted or compiled, never per
request.  ``check_policy_text`` is the single gate that operator-supplied
text (directives, base policy files) passes through: it parses the text,
validates it against the schema and, for ``forbid`` policies, rejects
constructs that can raise an evaluation error.  Cedar skips a policy whose
condition errors, so an erroring ``forbid`` would silently allow.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import cedarpy

NAMESPACE = "Clearance"


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a piece of policy text was refused, with its 1-based position."""

    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.message}"


class PolicyTextError(ValueError):
    """Policy text that does not parse, does not match the schema or could fail open."""

    def __init__(self, problems: list[Problem], source: str = "") -> None:
        self.problems = problems
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(where + "; ".join(str(p) for p in problems))


@lru_cache(maxsize=1)
def schema_text() -> str:
    """The Cedar schema shipped with Clearance (``policy/schema.cedarschema``)."""
    return resources.files("clearance.policy").joinpath("schema.cedarschema").read_text()


@lru_cache(maxsize=1)
def schema() -> cedarpy.Schema:
    """The shipped schema, parsed once."""
    return cedarpy.Schema.from_str(schema_text())


def builtin_policy_text(name: str) -> str:
    """The text of a policy file shipped in ``policy/policies/`` (``guard``, ``approval``, ``demo``)."""
    return resources.files("clearance.policy").joinpath("policies", f"{name}.cedar").read_text()


# ----------------------------------------------------------------------------
# Positions: split text into statements and find where a problem is.


@dataclass(frozen=True, slots=True)
class Statement:
    """One policy in a text: its source slice and start position."""

    start: int
    end: int  # offset just past the terminating ``;`` (or end of text)
    line: int
    column: int
    terminated: bool


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, col


def split_statements(text: str) -> list[Statement]:
    """The policies in ``text``, split at top-level ``;`` (strings and comments skipped)."""
    out: list[Statement] = []
    i, n = 0, len(text)
    start: int | None = None
    while i < n:
        c = text[i]
        if c == "/" and text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if c.isspace():
            i += 1
            continue
        if start is None:
            start = i
        if c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            continue
        if c == ";":
            out.append(Statement(start, i + 1, *_position(text, start), True))
            start = None
        i += 1
    if start is not None:
        out.append(Statement(start, n, *_position(text, start), False))
    return out


_TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|//[^\n]*|[A-Za-z_][A-Za-z0-9_]*|\d+|::|==|!=|<=|>=|&&|\|\||\S')


def _find_token(text: str, stmt: Statement, wanted: str) -> int | None:
    """Offset of the first token ``wanted`` inside ``stmt`` (comments skipped)."""
    for m in _TOKEN.finditer(text, stmt.start, stmt.end):
        tok = m.group(0)
        if tok.startswith("//"):
            continue
        if tok == wanted or (wanted.startswith('"') and tok == wanted):
            return m.start()
    # A fragment longer than one token (e.g. a quoted literal): plain search.
    j = text.find(wanted, stmt.start, stmt.end)
    return j if j >= 0 else None


def _locate(text: str, stmt: Statement, message: str) -> tuple[int, int]:
    """The best position for ``message`` within ``stmt``: a quoted fragment, else the statement start."""
    for frag in re.findall(r"`([^`]+)`", message):
        if re.fullmatch(r"policy\d+", frag) or frag.startswith(f"{NAMESPACE}::"):
            continue
        off = _find_token(text, stmt, frag)
        if off is not None:
            return _position(text, off)
    return stmt.line, stmt.column


def _parse_problems(text: str, statements: list[Statement]) -> list[Problem]:
    problems: list[Problem] = []
    for st in statements:
        chunk = text[st.start:st.end]
        if not st.terminated:
            line, col = _position(text, st.end)
            problems.append(Problem(line, col, "policy is not terminated with `;`"))
            continue
        try:
            cedarpy.PolicySet.from_str(chunk)
        except ValueError as e:
            msg = str(e)
            if "end of input" in msg:
                line, col = _position(text, st.end - 1)
            else:
                line, col = _locate(text, st, msg)
            problems.append(Problem(line, col, f"syntax error: {msg}"))
    return problems


# ----------------------------------------------------------------------------
# The fail-open check on forbid policies (EST: Cedar's JSON policy format).

_SAFE_CALLS = frozenset({
    "decimal", "datetime", "duration", "ip",
    "lessThan", "lessThanOrEqual", "greaterThan", "greaterThanOrEqual",
    "isIpv4", "isIpv6", "isLoopback", "isMulticast", "isInRange",
    "toDays", "toHours", "toMinutes", "toSeconds", "toMilliseconds",
    "isEmpty",
})
_STRUCTURAL = frozenset({
    "Value", "Var", "Slot", "!", "==", "!=", "<", "<=", ">", ">=", "&&", "||", "in",
    "contains", "containsAll", "containsAny", "has", "like", "is", "if-then-else", "Set", "Record", ".",
})
_HAZARDS = {
    "+": "integer arithmetic (`+`) can overflow",
    "-": "integer arithmetic (`-`) can overflow",
    "*": "integer arithmetic (`*`) can overflow",
    "neg": "integer negation can overflow",
    "getTag": "`getTag` fails when the tag is missing",
}


def _rooted_in_var(node: Any) -> bool:
    while isinstance(node, dict) and "." in node:
        node = node["."]["left"]
    return isinstance(node, dict) and "Var" in node


def forbid_hazards(est: dict) -> list[str]:
    """Why evaluating this policy's conditions could raise an error (empty when it cannot).

    The schema declares every attribute and context key as required, so schema
    validation already rules out missing attributes and type errors.  What it
    cannot rule out is left: integer overflow, extension functions that can
    fail at run time (``offset``, ``durationSince``, ...), tags, and reading an
    attribute of an entity named by a literal, which fails when that entity is
    not in the store.
    """
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for x in node:
                walk(x)
            return
        if not isinstance(node, dict):
            return
        for op, body in node.items():
            if op in ("Value", "Var", "Slot"):
                continue
            if op in _HAZARDS:
                found.append(_HAZARDS[op])
            elif op == "." and not _rooted_in_var(body["left"]):
                found.append(f"reading attribute `{body['attr']}` of an entity that may not exist")
            elif op not in _STRUCTURAL and op not in _SAFE_CALLS:
                found.append(f"`{op}` can fail at evaluation time")
            if isinstance(body, list):
                walk(body)
            elif op == "Record" and isinstance(body, dict):
                walk(list(body.values()))
            elif isinstance(body, dict):
                walk([body[k] for k in ("left", "right", "arg", "if", "then", "else") if k in body])

    for cond in est.get("conditions", []):
        walk(cond["body"])
    return sorted(set(found))


def to_est(text: str) -> dict:
    """Cedar text as its JSON policy-set form: ``{"staticPolicies", "templates", "templateLinks"}``."""
    return json.loads(cedarpy.policies_to_json_str(text))


def check_policy_text(text: str, source: str = "", *, allow_templates: bool = False) -> dict:
    """Parse, validate and check ``text``; return its JSON form or raise ``PolicyTextError``.

    Problems carry the line and column in ``text`` where they are.  A
    ``forbid`` that could raise an evaluation error is refused (see
    ``forbid_hazards``) rather than rewritten, so the operator sees and fixes
    exactly what is enforced.
    """
    statements = split_statements(text)
    if not statements:
        raise PolicyTextError([Problem(1, 1, "no policy found")], source)
    problems = _parse_problems(text, statements)
    if problems:
        raise PolicyTextError(problems, source)
    est = to_est(text)
    ordered = {**est["staticPolicies"], **est["templates"]}

    def stmt_of(pid: str) -> Statement:
        m = re.fullmatch(r"policy(\d+)", pid or "")
        idx = int(m.group(1)) if m else 0
        return statements[min(idx, len(statements) - 1)]

    if est["templates"] and not allow_templates:
        for pid in est["templates"]:
            st = stmt_of(pid)
            off = text.find("?", st.start, st.end)
            line, col = _position(text, off) if off >= 0 else (st.line, st.column)
            problems.append(Problem(line, col, "templates (`?principal`, `?resource`) are not allowed here"))
    result = cedarpy.validate_policies(text, schema())
    for err in result.errors:
        st = stmt_of(err.policy_id)
        line, col = _locate(text, st, err.error)
        msg = re.sub(r"^for policy `policy\d+`, ", "", err.error)
        problems.append(Problem(line, col, msg))
    for pid, pol in ordered.items():
        if pol.get("effect") != "forbid":
            continue
        st = stmt_of(pid)
        for hazard in forbid_hazards(pol):
            problems.append(Problem(
                st.line, st.column,
                f"forbid policy could fail open: {hazard}; Cedar skips a forbid whose condition errors, "
                "which would let requests through. Rewrite the condition without it.",
            ))
    if problems:
        problems.sort(key=lambda p: (p.line, p.column))
        raise PolicyTextError(problems, source)
    return est

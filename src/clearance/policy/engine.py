"""The policy engine: a compiled, immutable Cedar policy set and entity store that answers decisions.

``compile_policy`` reads the store and config once and builds a
``PolicyEngine``; the snapshot builder calls it whenever the control-plane
version moves.  ``PolicyEngine.decide`` never parses policy text or touches
the database.  Every way a decision can go wrong (unknown caller or model, a
missing or invalid guard score, an evaluation error, no decision) is a deny
whose reasons say why.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import cedarpy
from sqlalchemy.orm import Session

from clearance.config import Config
from clearance.guard.base import CATEGORIES as GUARD_CATEGORIES
from clearance.guard.base import CYBER_TIERS
from clearance.guard.context import policy_scores
from clearance.policy.analysis import Breakpoints, context_breakpoints
from clearance.policy.cedartext import NAMESPACE, PolicyTextError, check_policy_text, schema, schema_text
from clearance.policy.clock import cedar_datetime, cedar_datetime_ms, epoch_ms, utcnow
from clearance.policy.world import PolicyCompileError, PolicyWorld, load_world
from clearance.types import Decision, Principal, Reason

ACTIONS: tuple[str, ...] = ("invoke", "list")
MODEL_ATTRIBUTES: dict[str, type] = {"approval_required": bool, "self_hosted": bool, "cyber_capable": bool}
APPROVAL_TEMPLATE = "approval"
# Approval use cases a Model attribute exposes (``resource.security_testing_approvals``).  Every
# use case approved for a model also has its own list, ``ApprovalList::"<model>#<use case>"``.
USE_CASE_ATTRIBUTES: dict[str, str] = {"security-testing": "security_testing_approvals"}
_CYBER_KEYS = ("cyber_offense", *CYBER_TIERS)

_USER = f"{NAMESPACE}::User"
_ORG = f"{NAMESPACE}::Org"
_GROUP = f"{NAMESPACE}::OrgGroup"
_MODEL = f"{NAMESPACE}::Model"
_FAMILY = f"{NAMESPACE}::ModelFamily"
_APPROVALS = f"{NAMESPACE}::ApprovalList"
_ACTION = f"{NAMESPACE}::Action"
_ERR_POLICY = re.compile(r"policy `([^`]+)`")

__all__ = ["PolicyContext", "PolicyEngine", "compile_policy", "build_engine", "PolicyCompileError", "GUARD_CATEGORIES"]


@dataclass(frozen=True, slots=True)
class PolicyContext:
    """The request context of one decision.

    ``now`` should be timezone-aware (a naive value is taken as UTC).
    ``guard`` holds scores in 0..1 by category (``GUARD_CATEGORIES``; pass
    0.0 for a category no guard screens).  ``jailbreak`` and at least one
    cyber score are required; cyber tiers left out are derived fail closed
    by ``guard.context.policy_scores`` (``cyber_high_risk`` from
    ``cyber_offense``), as the request path does.
    """

    now: datetime
    use_case: str = ""
    guard: Mapping[str, float] = field(default_factory=dict)
    tools: tuple[str, ...] = ()  # the names of the tools offered to the model
    has_images: bool = False


def _system(id_: str, title: str) -> Reason:
    return Reason(id=id_, title=title, kind="system")


DEFAULT_DENY = _system("default-deny", "No policy permits this principal to use this model")


def _deny(snapshot: str, reason: Reason, *errors: str) -> Decision:
    return Decision(allowed=False, reasons=(reason,), errors=tuple(errors), snapshot_hash=snapshot)


def _uid(type_: str, id_: str) -> dict[str, str]:
    return {"type": type_, "id": id_}


def _decimal(units: int) -> dict:
    return {"__extn": {"fn": "decimal", "arg": f"{units // 10_000}.{units % 10_000:04d}"}}


def _window(start: datetime | None, end: datetime | None) -> dict | None:
    """A JSON-form condition ``context.now >= start && context.now < end`` (either side optional)."""
    now = {".": {"left": {"Var": "context"}, "attr": "now"}}
    parts = []
    if start is not None:
        parts.append({">=": {"left": now, "right": {"datetime": [{"Value": cedar_datetime(start)}]}}})
    if end is not None:
        parts.append({"<": {"left": now, "right": {"datetime": [{"Value": cedar_datetime(end)}]}}})
    if not parts:
        return None
    body = parts[0]
    for p in parts[1:]:
        body = {"&&": {"left": body, "right": p}}
    return {"kind": "when", "body": body}


class PolicyEngine:
    """A compiled policy set, entity store and schema; immutable once built.

    The policy set is sliced per model at compile time: each model's slice
    holds only the policies whose resource scope can match that model (scope
    ``All``, ``== Model::"m"``, ``in ModelFamily::"f"`` of its family, ``is
    Model``).  A policy outside a model's slice could never apply to it, so
    decisions are the same as with the whole set, and each costs a fraction.

    ``hash`` is the SHA-256 of everything compiled (schema, policies, entities).
    Decisions are cached per engine, for each model whose slice compares the
    context only against literals (see ``analysis.py``); the cache key holds
    the interval ``now`` and each guard score fall in among that slice's
    literals, so time windows and guard thresholds are honoured exactly, and a
    window opening on one model does not empty the cache of the others.
    """

    def __init__(
        self, *, policies: dict[str, cedarpy.PolicySet], entities: cedarpy.Entities, reasons: dict[str, Reason],
        users: dict[str, str], models: tuple[str, ...], breakpoints: dict[str, Breakpoints | None],
        hash_: str, cache_size: int, counts: dict[str, int], policy_json: str = "",
    ) -> None:
        self._policies = policies
        self._entities = entities
        self._reasons = reasons
        self._users = users
        self._model_set = frozenset(models)
        # Per model: the literals its slice compares the context with (None: that model is not cached).
        self._bp = breakpoints if cache_size > 0 else {m: None for m in models}
        self._cache: dict[tuple, Decision] = {}
        self._cache_size = cache_size
        self.models: tuple[str, ...] = models
        self.hash: str = hash_
        self.counts: dict[str, int] = dict(counts)
        # The whole compiled policy set in Cedar's JSON form (what ``hash`` covers, with the entities).
        self.policy_json: str = policy_json

    @property
    def cacheable(self) -> bool:
        """Whether decisions of this engine are cached (see ``analysis.context_breakpoints``)."""
        return all(bp is not None for bp in self._bp.values())

    def reason(self, policy_id: str) -> Reason:
        return self._reasons.get(policy_id) or Reason(id=policy_id, title="", kind="policy")

    # -- decisions ----------------------------------------------------------

    def decide(self, principal: Principal, model: str, context: PolicyContext, action: str = "invoke") -> Decision:
        """Whether ``principal`` may perform ``action`` (``invoke``) on ``model`` in ``context``."""
        prepared = self._prepare(principal, model, context, action)
        if isinstance(prepared, Decision):
            return prepared
        key, inputs = prepared
        if key is not None:
            hit = self._cache.get(key)
            if hit is not None:
                return hit
        try:
            result = cedarpy.is_authorized(self._request(*inputs), self._policies[model], self._entities)
        except Exception as e:  # noqa: BLE001 - any failure of the evaluator is a deny
            return _deny(self.hash, _system("evaluation-error", "The policy engine could not evaluate this request"),
                         f"{type(e).__name__}: {e}")
        return self._finish(key, result)

    def allowed_models(self, principal: Principal, now: datetime, use_case: str = "") -> list[str]:
        """The models ``principal`` may invoke at ``now`` with no guard flags (for ``/v1/models``)."""
        ctx = PolicyContext(now=now, use_case=use_case, guard={c: 0.0 for c in GUARD_CATEGORIES})
        return [m for m in self.models if self.decide(principal, m, ctx).allowed]

    def _prepare(self, principal: Principal, model: str, context: PolicyContext, action: str):
        org = self._users.get(principal.user_id)
        if org is None:
            return _deny(self.hash, _system("unknown-principal", "The caller is not a known user"))
        if principal.org_id and principal.org_id != org:
            return _deny(self.hash, _system("principal-mismatch", "The caller's organisation does not match the store"))
        if model not in self._model_set:
            return _deny(self.hash, _system("unknown-model", "No such model"))
        if action not in ACTIONS:
            return _deny(self.hash, _system("unknown-action", "No such action"))
        raw = context.guard
        if raw.get("jailbreak") is None:
            return _deny(self.hash, _system("guard-score-missing", "No jailbreak score from the guard stage"))
        if all(raw.get(c) is None for c in _CYBER_KEYS):
            return _deny(self.hash, _system("guard-score-missing", "No cyber_offense score from the guard stage"))
        for cat in GUARD_CATEGORIES:
            v = raw.get(cat)
            if v is None:
                continue
            try:
                f = float(v)
            except (TypeError, ValueError):
                f = math.nan
            if isinstance(v, bool) or not (0.0 <= f <= 1.0):
                return _deny(self.hash, _system("guard-score-invalid", f"The {cat} score is not a number in 0..1"))
        guard = policy_scores(raw)
        units = [round(guard[c] * 10_000) for c in GUARD_CATEGORIES]
        tools = context.tools
        if isinstance(tools, str) or not all(isinstance(t, str) for t in tools):
            return _deny(self.hash, _system("context-invalid", "The request's tool names are not strings"))
        tools = tuple(sorted(set(tools)))
        try:
            now_ms = epoch_ms(context.now)
        except (TypeError, AttributeError, OverflowError):
            return _deny(self.hash, _system("context-invalid", "The request time is not a valid instant"))
        key = None
        bp = self._bp[model]
        if bp is not None:
            key = (action, principal.user_id, model, context.use_case, bp.now_bucket(now_ms),
                   tuple(bp.guard_bucket(c, u) for c, u in zip(GUARD_CATEGORIES, units)),
                   tools if "tools" in bp.reads else None,
                   bool(context.has_images) if "has_images" in bp.reads else None)
        return key, (principal.user_id, action, model, now_ms, str(context.use_case), units, tools,
                     bool(context.has_images))

    @staticmethod
    def _request(user_id: str, action: str, model: str, now_ms: int, use_case: str, units: list[int],
                 tools: tuple[str, ...] = (), has_images: bool = False) -> dict:
        """The Cedar request for already-checked inputs (built only on a cache miss)."""
        return {
            "principal": _uid(_USER, user_id),
            "action": _uid(_ACTION, action),
            "resource": _uid(_MODEL, model),
            "context": {
                "now": {"__extn": {"fn": "datetime", "arg": cedar_datetime_ms(now_ms)}},
                "use_case": use_case,
                "guard": {c: _decimal(u) for c, u in zip(GUARD_CATEGORIES, units)},
                "tools": list(tools),
                "has_images": has_images,
            },
        }

    def _finish(self, key: tuple | None, result: cedarpy.AuthzResult) -> Decision:
        diag = result.diagnostics
        if diag.errors:
            ids = []
            for err in diag.errors:
                m = _ERR_POLICY.search(err)
                if m:
                    ids.append(m.group(1))
            reasons = (_system("evaluation-error", "A policy could not be evaluated; denied to be safe"),
                       *self._dedupe(ids))
            return Decision(False, reasons, tuple(diag.errors), self.hash)
        decision = result.decision
        if decision == cedarpy.Decision.Allow:
            out = Decision(True, self._dedupe(diag.reasons), (), self.hash)
        elif decision == cedarpy.Decision.Deny:
            reasons = self._dedupe(diag.reasons) or (DEFAULT_DENY,)
            out = Decision(False, reasons, (), self.hash)
        else:
            return _deny(self.hash, _system("no-decision", "The policy engine reached no decision"))
        if key is not None:
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[key] = out
        return out

    def _dedupe(self, policy_ids: list[str]) -> tuple[Reason, ...]:
        seen: dict[str, Reason] = {}
        for pid in policy_ids:
            r = self.reason(pid)
            seen.setdefault(r.id, r)
        return tuple(seen.values())


# -- compiling ----------------------------------------------------------------


def compile_policy(session: Session, config: Config, *, now: datetime | None = None) -> PolicyEngine:
    """Compile the store and config into a ``PolicyEngine``; raises ``PolicyCompileError``.

    Directives and grants that ended before ``now`` (default: the current
    time) are left out, so the engine answers for requests at or after ``now``.
    """
    return build_engine(load_world(session, config, now=now or utcnow()))


def _annotated(est: dict, source: str) -> tuple[str, str]:
    ann = est.get("annotations") or {}
    pid = ann.get("id")
    if not pid:
        raise PolicyCompileError(f"{source}: every policy needs an @id(\"...\") annotation (and a @title)")
    return pid, ann.get("title", "")


def _model_attrs(name: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(attrs) - set(MODEL_ATTRIBUTES))
    if unknown:
        raise PolicyCompileError(
            f"model {name!r}: unknown policy attributes {unknown}; known: {sorted(MODEL_ATTRIBUTES)}")
    out: dict[str, Any] = {}
    for k, typ in MODEL_ATTRIBUTES.items():
        v = attrs.get(k, False)
        if not isinstance(v, typ):
            raise PolicyCompileError(f"model {name!r}: attribute {k!r} must be a {typ.__name__}")
        out[k] = v
    out["approvals"] = {"__entity": _uid(_APPROVALS, name)}
    for use_case, attr in USE_CASE_ATTRIBUTES.items():
        out[attr] = {"__entity": _uid(_APPROVALS, use_case_list(name, use_case))}
    return out


def use_case_list(model: str, use_case: str) -> str:
    """The id of the ``ApprovalList`` of orgs approved for ``model`` with ``use_case``."""
    return f"{model}#{use_case}"


def _entities_json(world: PolicyWorld) -> list[dict]:
    model_names = {m.name for m in world.models}
    # Approval lists: one per model (its id is the model name); one per model and use case that a
    # Model attribute exposes (always present, as the attribute names it); one per other use case
    # approved for the model (which rules can name as ApprovalList::"<model>#<use case>").
    by_use_case = {use_case_list(m, u) for m in model_names for u in USE_CASE_ATTRIBUTES}
    approved: dict[str, set[str]] = {}
    for a in world.approvals:
        if a.model not in model_names:
            continue
        approved.setdefault(a.org, set()).add(a.model)
        if a.use_case:
            approved[a.org].add(use_case_list(a.model, a.use_case))
            by_use_case.add(use_case_list(a.model, a.use_case))
    clash = sorted(by_use_case & model_names)
    if clash:
        raise PolicyCompileError(f"model names {clash} clash with approval lists named '<model>#<use case>'")
    lists = sorted(model_names | by_use_case)
    ents: list[dict] = [{"uid": _uid(_GROUP, g), "attrs": {}, "parents": []} for g in world.groups]
    ents += [{"uid": _uid(_APPROVALS, name), "attrs": {}, "parents": []} for name in lists]
    for slug in sorted(world.orgs):
        parents = [_uid(_GROUP, g) for g in world.orgs[slug]]
        parents += [_uid(_APPROVALS, name) for name in sorted(approved.get(slug, ()))]
        ents.append({"uid": _uid(_ORG, slug), "attrs": {}, "parents": parents})
    for u in world.users:
        if u.org not in world.orgs:
            raise PolicyCompileError(f"user {u.id!r} belongs to unknown org {u.org!r}")
        ents.append({
            "uid": _uid(_USER, u.id),
            "attrs": {"nationality": u.nationality, "us_person": u.us_person, "verified": u.verified},
            "parents": [_uid(_ORG, u.org)],
        })
    families = sorted({m.family for m in world.models if m.family})
    ents += [{"uid": _uid(_FAMILY, f), "attrs": {}, "parents": []} for f in families]
    for m in world.models:
        ents.append({
            "uid": _uid(_MODEL, m.name),
            "attrs": _model_attrs(m.name, m.attributes),
            "parents": [_uid(_FAMILY, m.family)] if m.family else [],
        })
    return ents


def _may_apply(scope: dict | None, model: str, family: str) -> bool:
    """Whether a policy with this resource scope could apply to ``model`` (True when unsure)."""
    if not scope or scope.get("op") == "All" or "slot" in scope:
        return True
    op = scope.get("op")
    if op in ("==", "in") and "entity" in scope:
        ent = scope["entity"]
        if ent.get("type") == _MODEL:
            return ent.get("id") == model
        if op == "in" and ent.get("type") == _FAMILY:
            return bool(family) and ent.get("id") == family
        return ent.get("type") not in (_MODEL, _FAMILY, _USER, _ORG, _GROUP, _APPROVALS)
    if op == "is":
        if scope.get("entity_type") not in (_MODEL, "Model"):
            return scope.get("entity_type") is None
        return _may_apply({"op": "in", **scope["in"]}, model, family) if "in" in scope else True
    return True


def build_engine(world: PolicyWorld) -> PolicyEngine:
    """Compile a ``PolicyWorld`` into a ``PolicyEngine``; raises ``PolicyCompileError``."""
    static: dict[str, dict] = {}
    templates: dict[str, dict] = {}
    reasons: dict[str, Reason] = {}
    seen_ids: dict[str, str] = {}

    for src in world.sources:
        try:
            est = check_policy_text(src.text, src.name, allow_templates=True)
        except PolicyTextError as e:
            raise PolicyCompileError(str(e)) from None
        for kind, bucket in (("staticPolicies", static), ("templates", templates)):
            for pol in est[kind].values():
                pid, title = _annotated(pol, src.name)
                if pid in seen_ids:
                    raise PolicyCompileError(f"{src.name}: policy id {pid!r} is already used in {seen_ids[pid]}")
                seen_ids[pid] = src.name
                bucket[f"base:{pid}"] = pol
                reasons[f"base:{pid}"] = Reason(id=pid, title=title, kind="policy")

    for d in world.directives:
        try:
            est = check_policy_text(d.text, f"directive {d.id}")
        except PolicyTextError as e:
            raise PolicyCompileError(str(e)) from None
        window = _window(d.effective_at, d.expires_at)
        for i, pol in enumerate(est["staticPolicies"].values()):
            pol = dict(pol)
            pol["annotations"] = {**(pol.get("annotations") or {}), "id": d.id, "title": d.title}
            pol["conditions"] = list(pol.get("conditions") or []) + ([window] if window else [])
            cid = f"directive:{d.id}:{i}"
            static[cid] = pol
            reasons[cid] = Reason(id=d.id, title=d.title, kind="directive")

    model_names = {m.name for m in world.models}
    for g in world.grants:
        cid = f"grant:{g.id}"
        title = f"Time-boxed access for {g.org} to {g.model}" + (f": {g.reason}" if g.reason else "")
        static[cid] = {
            "effect": "permit",
            "principal": {"op": "in", "entity": _uid(_ORG, g.org)},
            "action": {"op": "All"},
            "resource": {"op": "==", "entity": _uid(_MODEL, g.model)},
            "conditions": [_window(g.starts_at, g.ends_at)],
            "annotations": {"id": cid, "title": title},
        }
        reasons[cid] = Reason(id=cid, title=title, kind="grant")

    links = []
    template_key = f"base:{APPROVAL_TEMPLATE}"
    if template_key in templates:
        for a in world.approvals:
            if a.model not in model_names or a.org not in world.orgs:
                continue
            cid = f"approval:{a.id}"
            links.append({"templateId": template_key, "newId": cid,
                          "values": {"?principal": _uid(_ORG, a.org), "?resource": _uid(_MODEL, a.model)}})
            title = f"Access request {a.id} approved for {a.org} on {a.model}" + (
                f" for {a.use_case}" if a.use_case else "")
            reasons[cid] = Reason(id=cid, title=title, kind="approval")

    policy_json = {"staticPolicies": static, "templates": templates, "templateLinks": links}
    entities_json = _entities_json(world)
    policies: dict[str, cedarpy.PolicySet] = {}
    link_model = {ln["newId"]: ln["values"]["?resource"]["id"] for ln in links}
    breakpoints: dict[str, Breakpoints | None] = {}
    for m in world.models:
        keep = {pid: pol for pid, pol in static.items() if _may_apply(pol.get("resource"), m.name, m.family)}
        breakpoints[m.name] = context_breakpoints(list(keep.values()) + list(templates.values()))
        sliced = {"staticPolicies": keep, "templates": templates,
                  "templateLinks": [ln for ln in links if link_model[ln["newId"]] == m.name]}
        try:
            policies[m.name] = cedarpy.PolicySet.from_json_str(json.dumps(sliced))
        except ValueError as e:
            raise PolicyCompileError(f"the compiled policy set is invalid: {e}") from None
    try:
        entities = cedarpy.Entities.from_json_str(json.dumps(entities_json), schema())
    except ValueError as e:
        raise PolicyCompileError(f"the store does not match the policy schema: {e}") from None

    digest = hashlib.sha256(json.dumps(
        {"schema": schema_text(), "policies": policy_json, "entities": entities_json},
        sort_keys=True, separators=(",", ":"),
    ).encode()).hexdigest()
    return PolicyEngine(
        policies=policies, entities=entities, reasons=reasons,
        users={u.id: u.org for u in world.users},
        models=tuple(m.name for m in world.models),
        breakpoints=breakpoints, hash_=digest, cache_size=world.cache_size,
        policy_json=json.dumps(policy_json, sort_keys=True),
        counts={"policies": len(static), "templates": len(templates), "approvals": len(links),
                "directives": len(world.directives), "grants": len(world.grants),
                "users": len(world.users), "orgs": len(world.orgs), "models": len(world.models)},
    )

"""Admin API routes of the policy area: directives, customer access requests and time-boxed grants.

JSON in and out.  Errors are ``{"error": {"message", "type", "code", ...}}``
with 400 (bad input, including policy text with line and column), 401/403
(admin token), 404 (no such directive, request or grant) or 409 (conflict,
e.g. a reused directive id or a request that is not awaiting a decision).
Every change commits together with a control-plane version bump.

When the config names policy invariants, every change to directives, grants
and approvals is checked against them before it commits
(``policy/enforce.py``): one that would break an invariant is refused with
409 ``invariant_violation`` naming the invariant and a counterexample, unless
the body overrides it (``override_invariants: [id, ...]`` with
``override_reason`` or ``reason``), which is recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.routing import Route

from clearance.api.admin_auth import admin_endpoint, require
from clearance.api.errors import ApiError
from clearance.policy import approvals, directives, grants
from clearance.policy.clock import parse_instant
from clearance.policy.enforce import InvariantViolation, invariant_guard
from clearance.policy.errors import InvalidRequest, PolicyAdminError

Endpoint = Callable[[Request, dict, Session], tuple[object, int]]


def _policy_error(e: PolicyAdminError) -> ApiError:
    return ApiError(e.status, str(e), type="invalid_request_error" if e.status == 400 else e.code, code=e.code,
                    reasons=_invariant_reasons(e))


def _by(request: Request) -> str:
    """Who decides: the authenticated administrator (a body's ``by`` cannot name someone else)."""
    return request.state.actor.name


def _permitted(endpoint: Endpoint, permission: str, org_of: Callable | None = None):
    """``endpoint`` behind ``permission`` (for the org ``org_of(request, body, session)`` names, if given)."""

    def run(request: Request, body: dict, session: Session, actor):
        require(actor, permission, org_of(request, body, session) if org_of else None)
        request.state.actor = actor
        return endpoint(request, body, session)

    return run


def _overrides(body: dict) -> list[str]:
    v = body.get("override_invariants") or []
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise InvalidRequest("'override_invariants' must be a list of invariant ids")
    return v


def _guarded(endpoint: Endpoint, config) -> Endpoint:
    """``endpoint`` with its change checked against the config's policy invariants before it commits."""
    if config is None:
        return endpoint

    def run(request: Request, body: dict, session: Session):
        reason = _text(body, "override_reason") or _text(body, "reason")
        change = f"{request.method} {request.url.path}"
        with invariant_guard(session, config, change, _overrides(body), reason, _by(request)) as outcome:
            result, status = endpoint(request, body, session)
        if outcome.overridden and isinstance(result, dict):
            result = {**result, "overridden_invariants": outcome.overridden}
        return result, status

    return run


def _invariant_reasons(e: PolicyAdminError) -> list[dict[str, str]] | None:
    """The broken invariants of a refused change, with their counterexamples, for the error body."""
    if not isinstance(e, InvariantViolation):
        return None
    return [{"id": r.id, "kind": "invariant", "title": r.title, "status": r.status,
             "counterexample": r.counterexample.describe() if r.counterexample else r.reason} for r in e.results]


def _text(body: dict, name: str, required: bool = False) -> str:
    v = body.get(name)
    if v is None or v == "":
        if required:
            raise InvalidRequest(f"'{name}' is required")
        return ""
    if not isinstance(v, str):
        raise InvalidRequest(f"'{name}' must be a string")
    return v


def _instant(body: dict, name: str, required: bool = False) -> datetime | None:
    v = _text(body, name, required)
    if not v:
        return None
    try:
        return parse_instant(v)
    except ValueError as e:
        raise InvalidRequest(f"'{name}': {e}") from None


# -- directives -----------------------------------------------------------------


def apply_directive(request: Request, body: dict, session: Session):
    v = directives.apply_directive(
        session, _text(body, "text", True), id=_text(body, "id", True), title=_text(body, "title", True),
        authority=_text(body, "authority"), reference=_text(body, "reference"),
        effective_at=_instant(body, "effective_at"), expires_at=_instant(body, "expires_at"),
    )
    return v.to_json(), 201


def list_directives(request: Request, body: dict, session: Session):
    active = request.query_params.get("active", "").lower() in ("1", "true", "yes")
    return {"data": [v.to_json() for v in directives.list_directives(session, include_inactive=not active)]}, 200


def get_directive(request: Request, body: dict, session: Session):
    return directives.get_directive(session, request.path_params["directive_id"]).to_json(), 200


def revoke_directive(request: Request, body: dict, session: Session):
    v = directives.revoke_directive(session, request.path_params["directive_id"], _text(body, "reason"))
    return v.to_json(), 200


# -- approvals ------------------------------------------------------------------


def _approval_endpoints(known_models: Collection[str] | None):
    def request_access(request: Request, body: dict, session: Session):
        v = approvals.request_approval(session, _text(body, "org", True), _text(body, "model", True),
                                       requested_by=_text(body, "requested_by") or _by(request), reason=_text(body, "reason"),
                                       known_models=known_models, use_case=_text(body, "use_case"))
        return v.to_json(), 201

    def list_requests(request: Request, body: dict, session: Session):
        q = request.query_params
        return {"data": [v.to_json() for v in approvals.list_approvals(session, org=q.get("org") or None,
                                                                        status=q.get("status") or None)]}, 200

    def get_request(request: Request, body: dict, session: Session):
        return approvals.get_approval(session, request.path_params["approval_id"]).to_json(), 200

    def act(fn):
        def run(request: Request, body: dict, session: Session):
            v = fn(session, request.path_params["approval_id"], by=_by(request), reason=_text(body, "reason"))
            return v.to_json(), 200
        return run

    return request_access, list_requests, get_request, act


# -- grants ---------------------------------------------------------------------


def _grant_endpoints(known_models: Collection[str] | None):
    def add(request: Request, body: dict, session: Session):
        v = grants.add_grant(session, _text(body, "org", True), _text(body, "model", True),
                             _instant(body, "starts_at", True), _instant(body, "ends_at", True),
                             reason=_text(body, "reason"), by=_by(request), known_models=known_models)
        return v.to_json(), 201

    def list_(request: Request, body: dict, session: Session):
        return {"data": [v.to_json() for v in grants.list_grants(session, org=request.query_params.get("org"))]}, 200

    def revoke(request: Request, body: dict, session: Session):
        return grants.revoke_grant(session, request.path_params["grant_id"], _text(body, "reason")).to_json(), 200

    return add, list_, revoke


def routes(sessions: Callable, admin_token_env: str | None = None, *,
           known_models: Collection[str] | None = None, audit=None, config=None) -> list[Route]:
    """The policy admin routes, each behind a named administrator's permission (see ``admin_auth``).

    ``sessions`` is a SQLAlchemy ``sessionmaker`` (or a callable returning
    one).  ``admin_token_env`` names the shared token's variable (it can only
    create the first operator).  ``known_models`` (the config's model names)
    lets requests for unknown models be refused with 400.  ``audit`` is the
    gateway's audit log, where each change is recorded.  ``config`` (the gateway's) turns on the
    invariant check of every change that can widen or narrow access (``policy.invariants``).
    """
    request_access, list_requests, get_request, act = _approval_endpoints(known_models)
    add_grant, list_grants, revoke_grant = _grant_endpoints(known_models)

    def approval_org(request, body, session):
        return approvals.get_approval(session, request.path_params["approval_id"]).org

    def body_org(request, body, session):
        return _text(body, "org", True)

    def query_org(request, body, session):
        return request.query_params.get("org") or None

    def r(path: str, fn: Endpoint, method: str, permission: str, org_of: Callable | None = None,
          checked: bool = False) -> Route:
        fn = _guarded(fn, config) if checked else fn
        return Route(path, admin_endpoint(_permitted(fn, permission, org_of), sessions, admin_token_env, audit,
                                          (PolicyAdminError,), _policy_error), methods=[method])

    return [
        r("/admin/directives", apply_directive, "POST", "policy.write", checked=True),
        r("/admin/directives", list_directives, "GET", "policy.read"),
        r("/admin/directives/{directive_id}", get_directive, "GET", "policy.read"),
        r("/admin/directives/{directive_id}/revoke", revoke_directive, "POST", "policy.write", checked=True),
        r("/admin/approvals", request_access, "POST", "approval.request", body_org),
        r("/admin/approvals", list_requests, "GET", "approval.read", query_org),
        r("/admin/approvals/{approval_id}", get_request, "GET", "approval.read", approval_org),
        r("/admin/approvals/{approval_id}/approve", act(approvals.approve_request), "POST", "approval.decide", checked=True),
        r("/admin/approvals/{approval_id}/deny", act(approvals.deny_request), "POST", "approval.decide"),
        r("/admin/approvals/{approval_id}/revoke", act(approvals.revoke_approval), "POST", "approval.decide", checked=True),
        r("/admin/grants", add_grant, "POST", "grant.write", checked=True),
        r("/admin/grants", list_grants, "GET", "policy.read"),
        r("/admin/grants/{grant_id}/revoke", revoke_grant, "POST", "grant.write", checked=True),
    ]

"""The administrative API under ``/admin``: identity here, policy in ``admin_policy``.

Every admin route needs ``Authorization: Bearer <token>``, where the token is
read from the environment variable named by ``server.admin_token_env``.  When
that variable is unset the admin API answers 403 to everyone: it is never
open by default.
"""

from __future__ import annotations

import hmac
import os
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from clearance.api.errors import ApiError, bad_request
from clearance.api.http import json_response, read_json, request_id
from clearance.identity import service


def _check_token(request: Request, env_name: str) -> None:
    expected = os.environ.get(env_name)
    if not expected:
        raise ApiError(403, f"the admin API is disabled: set ${env_name} to enable it", type="permission_error",
                       code="admin_disabled")
    auth = request.headers.get("authorization", "")
    given = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(401, "invalid admin token", type="authentication_error", code="invalid_admin_token")


def guarded(endpoint, env_name: str, sessions):
    """Wrap an admin endpoint ``(request, body, session) -> object`` with auth, a transaction and errors."""

    async def run(request: Request) -> Response:
        rid = request_id(request)
        try:
            _check_token(request, env_name)
            body = await read_json(request, 1_048_576, empty={}) if request.method == "POST" else {}
            if not isinstance(body, dict):
                raise bad_request("request body must be a JSON object")
            with sessions() as session:
                try:
                    result = endpoint(request, body, session)
                    session.commit()
                except service.IdentityError as e:
                    session.rollback()
                    raise ApiError(409 if "already exists" in str(e) else 400, str(e)) from None
            return json_response(result, 201 if request.method == "POST" else 200, {"x-request-id": rid})
        except ApiError as err:
            return json_response(err.openai_body(rid), err.status, {"x-request-id": rid})

    return run


def _str(body: dict, name: str, required: bool = True, default: str = "") -> str:
    v = body.get(name, None)
    if v is None:
        if required:
            raise bad_request(f"'{name}' is required", name)
        return default
    if not isinstance(v, str):
        raise bad_request(f"'{name}' must be a string", name)
    return v


def _bool(body: dict, name: str) -> bool:
    v = body.get(name, False)
    if not isinstance(v, bool):
        raise bad_request(f"'{name}' must be a boolean", name)
    return v


def add_org(request, body, session):
    groups = body.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise bad_request("'groups' must be a list of strings", "groups")
    org = service.add_org(session, _str(body, "slug"), _str(body, "name", False), groups)
    return {"slug": org.slug, "name": org.name, "groups": groups}


def list_orgs(request, body, session):
    return {"orgs": [{"slug": o.slug, "name": o.name, "groups": g} for o, g in service.list_orgs(session)]}


def add_user(request, body, session):
    u = service.add_user(session, _str(body, "id"), _str(body, "org"), nationality=_str(body, "nationality", False),
                         us_person=_bool(body, "us_person"), verified=_bool(body, "verified"),
                         email=_str(body, "email", False))
    return {"id": u.id, "org": u.org_slug, "nationality": u.nationality, "us_person": u.us_person,
            "verified": u.verified}


def create_key(request, body, session):
    expires = _str(body, "expires_at", False)
    try:
        expires_at = datetime.fromisoformat(expires) if expires else None
    except ValueError:
        raise bad_request("'expires_at' must be an ISO 8601 instant", "expires_at") from None
    k = service.create_key(session, _str(body, "user"), name=_str(body, "name", False),
                           use_case=_str(body, "use_case", False), expires_at=expires_at)
    return {"key_id": k.key_id, "key": k.key, "user": k.user_id,
            "expires_at": k.expires_at.isoformat() if k.expires_at else None}


def revoke_key(request, body, session):
    service.revoke_key(session, request.path_params["key_id"])
    return {"key_id": request.path_params["key_id"], "revoked": True}


def list_keys(request, body, session):
    return {"keys": [{"key_id": k.id, "user": k.user_id, "use_case": k.use_case,
                      "revoked": k.revoked_at is not None,
                      "expires_at": k.expires_at.isoformat() if k.expires_at else None}
                     for k in service.list_keys(session, request.query_params.get("user"))]}


def admin_routes(gw, sessions) -> list[Route]:
    env = gw.config.server.admin_token_env

    def r(path, fn, method):
        return Route(path, guarded(fn, env, sessions), methods=[method])

    routes = [
        r("/admin/orgs", add_org, "POST"), r("/admin/orgs", list_orgs, "GET"),
        r("/admin/users", add_user, "POST"),
        r("/admin/keys", create_key, "POST"), r("/admin/keys", list_keys, "GET"),
        r("/admin/keys/{key_id}/revoke", revoke_key, "POST"),
    ]
    try:
        from clearance.api import admin_policy
    except ImportError:
        return routes
    return routes + admin_policy.routes(sessions, env, config=gw.config)

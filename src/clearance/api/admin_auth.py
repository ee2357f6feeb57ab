"""Who is calling the admin API, what they may do, and the wrapper every admin route runs in.

A caller presents ``Authorization: Bearer <token>``:

- a named administrator's token (``clra_…``, see ``identity/admins.py``):
  the caller acts with that administrator's role (``identity/roles.py``);
- the shared token from the environment variable named by
  ``server.admin_token_env``: it may only create the first operator
  (``POST /admin/admins``) and nothing else.

``admin_endpoint`` wraps an endpoint ``(request, body, session, actor)``:
authentication, the JSON body, one transaction, the control-plane changes it
noted written to the audit log under the actor's name once committed, and
every error as JSON with the request id.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response

from clearance.api.errors import ApiError, bad_request
from clearance.api.http import json_response, read_json, request_id
from clearance.audit import changes
from clearance.identity import admins
from clearance.identity.roles import Actor, allowed
from clearance.identity.service import IdentityError

log = logging.getLogger("clearance.admin")

BOOTSTRAP = Actor("bootstrap", "bootstrap")
_CODES = {400: "invalid_request_error", 404: "not_found", 409: "conflict"}


def _bearer(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth[:7].lower() == "bearer " else ""


def authenticate(request: Request, session, env_name: str | None) -> Actor:
    """The actor behind the request's bearer token; ``ApiError`` 401 (or 403 when nothing can authenticate)."""
    token = _bearer(request)
    if token.startswith(admins.PREFIX):
        try:
            return admins.authenticate(session, token)
        except admins.AdminAuthError as e:
            raise ApiError(401, str(e), type="authentication_error", code="invalid_admin_token") from None
    shared = os.environ.get(env_name) if env_name else None
    if shared and token and hmac.compare_digest(token.encode(), shared.encode()):
        return BOOTSTRAP
    if not shared and not token:
        raise ApiError(403, f"the admin API needs a named administrator's token (or ${env_name} to create the first "
                            "operator)", type="permission_error", code="admin_disabled")
    raise ApiError(401, "invalid admin token" if token else "missing admin token: send 'Authorization: Bearer <token>'",
                   type="authentication_error", code="invalid_admin_token")


def require(actor: Actor, permission: str, org: str | None = None) -> None:
    """Raise 403 unless ``actor`` holds ``permission`` (for ``org``)."""
    if allowed(actor, permission, org):
        return
    if actor.role == "bootstrap":
        raise ApiError(403, "the shared admin token can only create the first operator (POST /admin/admins with "
                            "role 'operator'); use a named administrator's token", type="permission_error",
                       code="forbidden")
    where = f" for org {org!r}" if org and actor.role == "org-admin" else ""
    raise ApiError(403, f"administrator {actor.name!r} ({actor.role}) may not {permission}{where}",
                   type="permission_error", code="forbidden")


def _open(sessions: Callable):
    """A session from a sessionmaker, or from a factory that returns one."""
    s = sessions()
    return s() if callable(s) else s


AdminEndpoint = Callable[[Request, dict, object, Actor], tuple[object, int]]


def admin_endpoint(endpoint: AdminEndpoint, sessions: Callable, env_name: str | None, audit=None,
                   domain_errors: tuple[type[Exception], ...] = (), to_api_error=None):
    """Wrap ``endpoint`` with authentication, a transaction, audit entries for its changes, and JSON errors."""

    async def run(request: Request) -> Response:
        rid = request_id(request)
        try:
            with _open(sessions) as session:  # who is calling, before reading what they send
                actor = authenticate(request, session, env_name)
            body = await read_json(request, 1_048_576, empty={}) if request.method == "POST" else {}
            if not isinstance(body, dict):
                raise bad_request("request body must be a JSON object")
            with _open(sessions) as session:
                try:
                    result, status = endpoint(request, body, session, actor)
                    session.commit()
                except IdentityError as e:
                    session.rollback()
                    raise ApiError(e.status, str(e), code=_CODES.get(e.status)) from None
                except domain_errors as e:
                    session.rollback()
                    raise to_api_error(e) from None
                except ApiError:
                    session.rollback()
                    raise
                noted = changes.take(session)
            try:
                await changes.write(audit, noted, actor.label, rid)
            except Exception as e:
                log.error("control-plane change committed but not recorded", extra={"request_id": rid,
                                                                                   "error": str(e)})
                raise ApiError(503, "the change was made but could not be recorded in the audit log; "
                                    "check the audit log's health", type="api_error", code="audit_unavailable")
            return json_response(result, status, {"x-request-id": rid})
        except ApiError as err:
            return json_response(err.openai_body(rid), err.status, {"x-request-id": rid})

    return run

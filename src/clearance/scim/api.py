"""``/scim/v2``: SCIM 2.0 Users and Groups for each org's identity provider.

Every request carries its org's SCIM bearer token (``tokens.py``) and
reaches only that org's users: a user of another org is "not found", and a
``userName`` held by another org is a uniqueness conflict.  Users are created,
replaced, patched (``PatchOp`` applied by scim2-models) and deleted
(a tombstone whose keys are revoked); ``active: false`` disables a user, which
every gateway enforces within a second.  Groups are the org's org groups,
read-only: an identity provider can never place anyone in a group.

Each change is an audit entry by ``scim:<org>``.  Errors are SCIM ``Error``
bodies with the status, a ``scimType`` and the request id.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import orjson
from pydantic import ValidationError
from scim2_models import Context, Group, ListResponse, PatchOp, SCIMException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from clearance.api.http import read_json, request_id
from clearance.api.errors import ApiError
from clearance.audit import changes
from clearance.identity import service
from clearance.identity.tables import Org, OrgGroupMember
from clearance.identity.tables import User as UserRow
from clearance.scim.resources import ScimUser, attributes, dump, to_resource
from clearance.scim.tokens import org_of_token

log = logging.getLogger("clearance.scim")

MEDIA = "application/scim+json"
_FILTER = re.compile(r'^\s*userName\s+eq\s+"([^"]*)"\s*$', re.IGNORECASE)


class ScimError(Exception):
    def __init__(self, status: int, detail: str, scim_type: str = "") -> None:
        super().__init__(detail)
        self.status, self.detail, self.scim_type = status, detail, scim_type


def _response(body: dict | None, status: int, rid: str) -> Response:
    content = orjson.dumps(body) if body is not None else b""
    return Response(content, status_code=status, media_type=MEDIA if body is not None else None,
                    headers={"x-request-id": rid})


def _error(e: ScimError, rid: str) -> Response:
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": str(e.status),
            "detail": e.detail, "requestId": rid}
    if e.scim_type:
        body["scimType"] = e.scim_type
    return _response(body, e.status, rid)


def _bearer(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth[:7].lower() == "bearer " else ""


def _validate(model, body: dict, ctx: Context):
    try:
        return model.model_validate(body, scim_ctx=ctx)
    except ValidationError as e:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise ScimError(400, f"invalid {model.__name__}: {where + ': ' if where else ''}{first.get('msg', e)}",
                        "invalidValue") from None


def scim_endpoint(fn: Callable, sessions, audit):
    """Wrap ``fn(request, body, session, org) -> (body, status)``: token, transaction, audit entries, errors."""

    async def run(request: Request) -> Response:
        rid = request_id(request)
        try:
            with sessions() as session:  # whose token, before reading what they send
                known = org_of_token(session, _bearer(request)) is not None
            if not known:
                raise ScimError(401, "invalid or missing SCIM bearer token")
            body = {}
            if request.method in ("POST", "PUT", "PATCH"):
                body = await read_json(request, 1_048_576)
                if not isinstance(body, dict):
                    raise ScimError(400, "request body must be a JSON object", "invalidSyntax")
            with sessions() as session:
                org = org_of_token(session, _bearer(request))
                if org is None:  # the token was replaced meanwhile
                    raise ScimError(401, "invalid or missing SCIM bearer token")
                try:
                    result, status = fn(request, body, session, org)
                    session.commit()
                except service.IdentityError as e:
                    session.rollback()
                    kind = {409: "uniqueness"}.get(e.status, "invalidValue" if e.status == 400 else "")
                    raise ScimError(e.status, str(e), kind) from None
                except SCIMException as e:
                    session.rollback()
                    raise ScimError(e.status, e.detail, e.scim_type) from None
                except ScimError:
                    session.rollback()
                    raise
                noted, slug = changes.take(session), org.slug
            try:
                await changes.write(audit, noted, f"scim:{slug}", rid)
            except Exception as e:
                log.error("SCIM change committed but not recorded", extra={"request_id": rid, "error": str(e)})
                raise ScimError(503, "the change was made but could not be recorded in the audit log") from None
            return _response(result, status, rid)
        except ApiError as e:  # body too large, invalid JSON
            return _error(ScimError(e.status, e.message, "invalidSyntax" if e.status == 400 else ""), rid)
        except ScimError as e:
            return _error(e, rid)

    return run


# -- users ------------------------------------------------------------------------


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/scim/v2"


def _own_user(session, org: Org, user_id: str) -> UserRow:
    u = session.get(UserRow, user_id)
    if u is None or u.org_slug != org.slug or u.deleted_at is not None:
        raise ScimError(404, f"no user {user_id!r}")
    return u


def _us_person(a) -> tuple[bool | None, bool]:
    """``(us_person, confirmed)``: the IdP's explicit ``usPerson`` is its attestation."""
    return a.us_person, a.us_person is not None


def _apply(session, org: Org, u: UserRow, resource: ScimUser) -> UserRow:
    a = attributes(resource)
    if a.user_id and a.user_id != u.id:
        raise ScimError(400, "userName cannot be changed", "mutability")
    us_person, confirmed = _us_person(a)
    service.update_user(session, u.id, nationality=a.nationality or "", us_person=us_person, email=a.email,
                        verified=a.verified if org.scim_trust_verified else None,
                        not_us_person_confirmed=confirmed)
    if a.active == (u.disabled_at is not None):
        service.set_user_disabled(session, u.id, not a.active)
    return u


def create_user(request, body, session, org):
    resource = _validate(ScimUser, body, Context.RESOURCE_CREATION_REQUEST)
    a = attributes(resource)
    existing = session.get(UserRow, a.user_id)
    if existing is not None:
        raise ScimError(409, f"userName {a.user_id!r} is already taken", "uniqueness")
    us_person, confirmed = _us_person(a)
    u = service.add_user(session, a.user_id, org.slug, nationality=a.nationality or "", us_person=bool(us_person),
                         verified=bool(a.verified) and org.scim_trust_verified, email=a.email,
                         not_us_person_confirmed=confirmed, source=f"scim:{org.slug}")
    if not a.active:
        service.set_user_disabled(session, u.id, True)
    session.flush()
    return dump(to_resource(u, _base(request)), Context.RESOURCE_CREATION_RESPONSE), 201


def get_user(request, body, session, org):
    u = _own_user(session, org, request.path_params["user_id"])
    return dump(to_resource(u, _base(request))), 200


def list_users(request, body, session, org):
    users = service.list_users(session, org.slug)
    flt = request.query_params.get("filter")
    if flt:
        m = _FILTER.match(flt)
        if m is None:
            raise ScimError(400, 'only the filter userName eq "..." is supported', "invalidFilter")
        users = [u for u in users if u.id == m.group(1)]
    try:
        start = max(1, int(request.query_params.get("startIndex", 1)))
        count = max(0, int(request.query_params.get("count", 100)))
    except ValueError:
        raise ScimError(400, "startIndex and count must be integers", "invalidValue") from None
    page = users[start - 1:start - 1 + min(count, 1000)]
    lr = ListResponse[ScimUser](total_results=len(users), start_index=start, items_per_page=len(page),
                                resources=[to_resource(u, _base(request)) for u in page])
    return dump(lr, Context.SEARCH_RESPONSE), 200


def replace_user(request, body, session, org):
    u = _own_user(session, org, request.path_params["user_id"])
    resource = _validate(ScimUser, body, Context.RESOURCE_REPLACEMENT_REQUEST)
    _apply(session, org, u, resource)
    return dump(to_resource(u, _base(request)), Context.RESOURCE_REPLACEMENT_RESPONSE), 200


def patch_user(request, body, session, org):
    u = _own_user(session, org, request.path_params["user_id"])
    patch = _validate(PatchOp[ScimUser], body, Context.RESOURCE_PATCH_REQUEST)
    resource = to_resource(u, _base(request))
    patch.patch(resource)
    _apply(session, org, u, resource)
    return dump(to_resource(u, _base(request)), Context.RESOURCE_PATCH_RESPONSE), 200


def delete_user(request, body, session, org):
    u = _own_user(session, org, request.path_params["user_id"])
    service.delete_user(session, u.id)
    return None, 204


# -- groups (read-only) -------------------------------------------------------------


def _groups(session, org: Org, request: Request) -> list[Group]:
    members = session.query(OrgGroupMember).filter(OrgGroupMember.org_slug == org.slug).all()
    out = []
    for m in sorted(members, key=lambda m: m.group_slug):
        g = Group.model_validate({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": m.group_slug,
                                  "displayName": m.group_slug})
        out.append(g)
    return out


def list_groups(request, body, session, org):
    groups = _groups(session, org, request)
    lr = ListResponse[Group](total_results=len(groups), start_index=1, items_per_page=len(groups), resources=groups)
    return dump(lr, Context.SEARCH_RESPONSE), 200


def get_group(request, body, session, org):
    for g in _groups(session, org, request):
        if g.id == request.path_params["group_id"]:
            return dump(g), 200
    raise ScimError(404, f"no group {request.path_params['group_id']!r}")


def refuse_group_change(request, body, session, org):
    raise ScimError(403, "org groups are set by the gateway's operators; an identity provider cannot change them",
                    "mutability")


def scim_routes(sessions, audit=None) -> list[Route]:
    def r(path: str, fn, methods: list[str]) -> Route:
        return Route("/scim/v2" + path, scim_endpoint(fn, sessions, audit), methods=methods)

    return [
        r("/Users", list_users, ["GET"]), r("/Users", create_user, ["POST"]),
        r("/Users/{user_id}", get_user, ["GET"]), r("/Users/{user_id}", replace_user, ["PUT"]),
        r("/Users/{user_id}", patch_user, ["PATCH"]), r("/Users/{user_id}", delete_user, ["DELETE"]),
        r("/Groups", list_groups, ["GET"]), r("/Groups", refuse_group_change, ["POST"]),
        r("/Groups/{group_id}", get_group, ["GET"]),
        r("/Groups/{group_id}", refuse_group_change, ["PUT", "PATCH", "DELETE"]),
    ]

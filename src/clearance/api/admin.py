"""The administrative API under ``/admin``: orgs, users, keys and administrators here, policy in ``admin_policy``.

Every route needs ``Authorization: Bearer <token>`` of a named administrator
and checks the permission its role grants (``identity/roles.py``); an
org-admin reaches only its own org's users and keys, and never sets
``verified``.  The shared token (``server.admin_token_env``) only creates the
first operator.  Each change is an entry in the audit log naming the
administrator (see ``admin_auth.py``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from starlette.routing import Route

from clearance.api.admin_auth import BOOTSTRAP, admin_endpoint, require
from clearance.api.errors import ApiError, bad_request
from clearance.identity import admins, service
from clearance.identity.roles import Actor


def _str(body: dict, name: str, required: bool = True, default: str = "") -> str:
    v = body.get(name, None)
    if v is None:
        if required:
            raise bad_request(f"'{name}' is required", name)
        return default
    if not isinstance(v, str):
        raise bad_request(f"'{name}' must be a string", name)
    return v


def _bool(body: dict, name: str, default: bool | None = False) -> bool | None:
    v = body.get(name, default)
    if v is None and default is None:
        return None
    if not isinstance(v, bool):
        raise bad_request(f"'{name}' must be a boolean", name)
    return v


def _instant(body: dict, name: str) -> datetime | None:
    raw = _str(body, name, False)
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")) if raw else None
    except ValueError:
        raise bad_request(f"'{name}' must be an ISO 8601 instant", name) from None


# -- orgs -----------------------------------------------------------------------


def add_org(request, body, session, actor):
    require(actor, "org.write")
    groups = body.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise bad_request("'groups' must be a list of strings", "groups")
    org = service.add_org(session, _str(body, "slug"), _str(body, "name", False), groups)
    return service.org_state(org, groups), 201


def list_orgs(request, body, session, actor):
    rows = [service.org_state(o, g) for o, g in service.list_orgs(session)]
    if actor.role == "org-admin":
        rows = [r for r in rows if r["slug"] == actor.org]
    else:
        require(actor, "org.read")
    return {"orgs": rows}, 200


def _org_change(fn):
    def run(request, body, session, actor):
        require(actor, "org.write")
        slug = request.path_params["slug"]
        return service.org_state(fn(session, slug, body)), 200
    return run


def scim_token(request, body, session, actor):
    """Issue the org's SCIM token (shown once; the previous one stops working)."""
    from clearance.scim.tokens import issue_token

    require(actor, "org.write")
    slug = request.path_params["slug"]
    token = issue_token(session, slug, bool(_bool(body, "trust_verified")))
    return {"org": slug, "token": token, "trust_verified": bool(body.get("trust_verified", False))}, 201


update_org = _org_change(lambda s, slug, body: service.update_org(s, slug, name=_str(body, "name", False) or None))
disable_org = _org_change(lambda s, slug, body: service.set_org_disabled(s, slug, True))
enable_org = _org_change(lambda s, slug, body: service.set_org_disabled(s, slug, False))


# -- users ----------------------------------------------------------------------

_VERIFY_FIELDS = ("verified", "verified_until")
_USER_FIELDS = ("nationality", "us_person", "email", "not_us_person_confirmed")


def add_user(request, body, session, actor):
    org = _str(body, "org")
    require(actor, "user.write", org)
    if body.get("verified") or body.get("verified_until"):
        require(actor, "user.verify", org)
    u = service.add_user(session, _str(body, "id"), org, nationality=_str(body, "nationality", False),
                         us_person=_bool(body, "us_person"), verified=_bool(body, "verified"),
                         email=_str(body, "email", False), verified_until=_instant(body, "verified_until"),
                         not_us_person_confirmed=_bool(body, "not_us_person_confirmed"))
    return service.user_state(u), 201


def list_users(request, body, session, actor):
    org = request.query_params.get("org") or None
    if actor.role == "org-admin":
        org = org or actor.org
    require(actor, "user.read", org)
    return {"users": [service.user_state(u) for u in service.list_users(session, org)]}, 200


def get_user(request, body, session, actor):
    u = service.get_user(session, request.path_params["user_id"], allow_deleted=True)
    require(actor, "user.read", u.org_slug)
    return service.user_state(u), 200


def update_user(request, body, session, actor):
    unknown = sorted(set(body) - set(_VERIFY_FIELDS) - set(_USER_FIELDS))
    if unknown:
        raise bad_request(f"unknown fields {unknown}; a user's org and id cannot be changed", unknown[0])
    u = service.get_user(session, request.path_params["user_id"])
    if any(f in body for f in ("nationality", "us_person", "email")):
        require(actor, "user.write", u.org_slug)
    if any(f in body for f in _VERIFY_FIELDS):
        require(actor, "user.verify", u.org_slug)
    if not body:
        raise bad_request("nothing to change: give nationality, us_person, email, verified or verified_until")
    nat = _str(body, "nationality", False, None) if "nationality" in body else None
    email = _str(body, "email", False, None) if "email" in body else None
    until = _instant(body, "verified_until") if "verified_until" in body else service.UNSET
    u = service.update_user(session, u.id, nationality=nat, us_person=_bool(body, "us_person", None),
                            verified=_bool(body, "verified", None), verified_until=until, email=email,
                            not_us_person_confirmed=bool(_bool(body, "not_us_person_confirmed")))
    return service.user_state(u), 200


def _user_change(fn):
    def run(request, body, session, actor):
        u = service.get_user(session, request.path_params["user_id"])
        require(actor, "user.write", u.org_slug)
        return service.user_state(fn(session, u.id)), 200
    return run


disable_user = _user_change(lambda s, uid: service.set_user_disabled(s, uid, True))
enable_user = _user_change(lambda s, uid: service.set_user_disabled(s, uid, False))
delete_user = _user_change(service.delete_user)


# -- keys -----------------------------------------------------------------------


def create_key(request, body, session, actor):
    u = service.get_user(session, _str(body, "user"))
    require(actor, "key.write", u.org_slug)
    k = service.create_key(session, u.id, name=_str(body, "name", False),
                           use_case=_str(body, "use_case", False), expires_at=_instant(body, "expires_at"))
    return {"key_id": k.key_id, "key": k.key, "user": k.user_id,
            "expires_at": k.expires_at.isoformat() if k.expires_at else None}, 201


def revoke_key(request, body, session, actor):
    key = service.get_key(session, request.path_params["key_id"])
    owner = service.get_user(session, key.user_id, allow_deleted=True)
    require(actor, "key.write", owner.org_slug)
    service.revoke_key(session, key.id)
    return {"key_id": key.id, "revoked": True}, 200


def list_keys(request, body, session, actor):
    user = request.query_params.get("user") or None
    org = request.query_params.get("org") or None
    if user:
        org = service.get_user(session, user, allow_deleted=True).org_slug
    elif actor.role == "org-admin":
        org = org or actor.org
    require(actor, "key.read", org)
    return {"keys": [{"key_id": k.id, "user": k.user_id, "use_case": k.use_case,
                      "revoked": k.revoked_at is not None,
                      "expires_at": k.expires_at.isoformat() if k.expires_at else None}
                     for k in service.list_keys(session, user, org)]}, 200


# -- administrators ---------------------------------------------------------------


def _lifetime(body: dict) -> timedelta:
    days = body.get("expires_in_days", 90)
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 366:
        raise bad_request("'expires_in_days' must be a whole number of days from 1 to 366", "expires_in_days")
    return timedelta(days=days)


def _created(c: admins.CreatedAdmin) -> dict:
    return {"name": c.name, "role": c.role, "org": c.org, "token": c.token,
            "expires_at": c.expires_at.isoformat() if c.expires_at else None}


def add_admin(request, body, session, actor: Actor):
    role = _str(body, "role")
    if actor is BOOTSTRAP:
        if role != "operator" or admins.has_operator(session):
            require(actor, "admin.write")  # refused with the bootstrap explanation
    else:
        require(actor, "admin.write")
    c = admins.add_admin(session, _str(body, "name"), role, org=_str(body, "org", False) or None,
                         created_by=actor.name, lifetime=_lifetime(body))
    return _created(c), 201


def list_admins(request, body, session, actor):
    require(actor, "admin.read")
    return {"admins": [admins.admin_state(a) for a in admins.list_admins(session)]}, 200


def whoami(request, body, session, actor):
    return {"name": actor.name, "role": actor.role, "org": actor.org}, 200


def rotate_admin(request, body, session, actor):
    name = request.path_params["name"]
    if name != actor.name:  # anyone may rotate their own token
        require(actor, "admin.write")
    return _created(admins.rotate_token(session, name, _lifetime(body))), 200


def _admin_switch(disabled: bool):
    def run(request, body, session, actor):
        require(actor, "admin.write")
        name = request.path_params["name"]
        if disabled and name == actor.name:
            raise ApiError(409, "an administrator cannot disable itself", code="conflict")
        return admins.admin_state(admins.set_admin_disabled(session, name, disabled)), 200
    return run


def admin_routes(gw, sessions) -> list[Route]:
    env = gw.config.server.admin_token_env

    def r(path, fn, method):
        return Route(path, admin_endpoint(fn, sessions, env, gw.audit), methods=[method])

    routes = [
        r("/admin/whoami", whoami, "GET"),
        r("/admin/orgs", add_org, "POST"), r("/admin/orgs", list_orgs, "GET"),
        r("/admin/orgs/{slug}", update_org, "POST"),
        r("/admin/orgs/{slug}/disable", disable_org, "POST"), r("/admin/orgs/{slug}/enable", enable_org, "POST"),
        r("/admin/orgs/{slug}/scim-token", scim_token, "POST"),
        r("/admin/users", add_user, "POST"), r("/admin/users", list_users, "GET"),
        r("/admin/users/{user_id}", get_user, "GET"), r("/admin/users/{user_id}", update_user, "POST"),
        r("/admin/users/{user_id}/disable", disable_user, "POST"),
        r("/admin/users/{user_id}/enable", enable_user, "POST"),
        r("/admin/users/{user_id}/delete", delete_user, "POST"),
        r("/admin/keys", create_key, "POST"), r("/admin/keys", list_keys, "GET"),
        r("/admin/keys/{key_id}/revoke", revoke_key, "POST"),
        r("/admin/admins", add_admin, "POST"), r("/admin/admins", list_admins, "GET"),
        r("/admin/admins/{name}/rotate", rotate_admin, "POST"),
        r("/admin/admins/{name}/disable", _admin_switch(True), "POST"),
        r("/admin/admins/{name}/enable", _admin_switch(False), "POST"),
    ]
    from clearance.api import admin_policy
    from clearance.api.admin_limits import limit_routes

    routes += limit_routes(gw, sessions)
    return routes + admin_policy.routes(sessions, env, known_models=[m.name for m in gw.config.models],
                                        audit=gw.audit, config=gw.config)

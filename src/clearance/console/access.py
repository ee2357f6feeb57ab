"""The access page: the approvals queue, evaluator grants, and orgs, users and keys with their lifecycle actions.

Org, user and key actions call the admin API's own endpoint functions
(``api/admin.py``) with the form's values, so their permission checks
(including an org-admin's own-org limit) and change entries are the admin
API's.  Approvals and grants call the policy service functions behind the
permissions ``api/admin_policy.py`` uses, under the same invariant guard.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from clearance.api import admin as admin_api
from clearance.api.admin_auth import require
from clearance.console.directives import parse_time
from clearance.console.web import (PREFIX, ActionError, Ctx, action, form, page, refused, render,
                                   run_action)
from clearance.identity import service
from clearance.policy import approvals, grants
from clearance.policy.enforce import invariant_guard


@dataclass
class _Call:
    """What an admin API endpoint reads of its request: path parameters and the query string."""

    path_params: dict
    query_params: dict = field(default_factory=dict)


def _visible_org(c: Ctx) -> str | None:
    return c.actor.org if c.actor.role == "org-admin" else None


def _load(c: Ctx) -> dict:
    org = _visible_org(c)
    out: dict = {}
    with c.console.sessions() as s:
        if c.can("approval.read", org):
            # Each with its history (requested, approved, denied, revoked: when, by whom, why).
            out["approvals"] = [approvals.get_approval(s, a.id).to_json() for a in approvals.list_approvals(s, org=org)]
        if c.can("policy.read"):
            out["grants"] = [g.to_json() for g in grants.list_grants(s)]
        if c.can("org.read", org):
            out["orgs"] = [service.org_state(o, g) for o, g in service.list_orgs(s)
                           if org is None or o.slug == org]
        if c.can("user.read", org):
            out["users"] = [service.user_state(u) for u in service.list_users(s, org)]
        if c.can("key.read", org):
            out["keys"] = [{"key_id": k.id, "user": k.user_id, "name": k.name, "use_case": k.use_case,
                            "revoked": k.revoked_at is not None, "expires_at": k.expires_at}
                           for k in service.list_keys(s, None, org)]
    return out


async def access_page(request: Request, c: Ctx, status: int = 200, flash=None, created_key=None) -> Response:
    data = _load(c)
    done = request.query_params.get("done", "")
    flash = list(flash or []) + ([("ok", done[:200])] if done else [])
    now = datetime.now(timezone.utc)
    return render(request, "access.html", status, c=c, page="access", flash=flash, created_key=created_key,
                  models=[m.name for m in c.console.config.models], now=now, **data)


async def _do(request: Request, c: Ctx, fn, done: str) -> Response:
    try:
        await run_action(request, c, fn)
    except ActionError as e:
        return await refused(request, c, e, lambda status, flash: access_page(request, c, status, flash),
                             [("error", f"Not done: {e}")])
    return RedirectResponse(f"{PREFIX}/access?done={done}", 303)


def _guarded(c: Ctx, s, change: str):
    return invariant_guard(s, c.console.config, change, [], "", c.actor.name)


# -- approvals --------------------------------------------------------------------


async def request_access(request: Request, c: Ctx) -> Response:
    org, model = form(request, "org"), form(request, "model")
    known = [m.name for m in c.console.config.models]

    def run(s):
        require(c.actor, "approval.request", org)
        return approvals.request_approval(s, org, model, requested_by=c.actor.name, reason=form(request, "reason"),
                                          known_models=known, use_case=form(request, "use_case"))
    return await _do(request, c, run, f"Access to {model} requested for {org}.")


def _decide(fn, verb: str, checked: bool):
    async def run_decision(request: Request, c: Ctx) -> Response:
        aid = request.path_params["approval_id"]

        def run(s):
            require(c.actor, "approval.decide", approvals.get_approval(s, aid).org)
            if not checked:
                return fn(s, aid, by=c.actor.name, reason=form(request, "reason"))
            with _guarded(c, s, f"POST /console/approvals/{aid}/{verb}"):
                return fn(s, aid, by=c.actor.name, reason=form(request, "reason"))
        return await _do(request, c, run, f"Request {aid}: {verb}d." if verb != "deny" else f"Request {aid}: denied.")
    return run_decision


# -- grants -----------------------------------------------------------------------


async def add_grant(request: Request, c: Ctx) -> Response:
    org, model = form(request, "org"), form(request, "model")
    try:
        starts = parse_time(form(request, "starts_at"), "starts at") or datetime.now(timezone.utc)
        ends = parse_time(form(request, "ends_at"), "ends at")
    except ActionError as e:
        return await access_page(request, c, 400, [("error", str(e))])
    if ends is None:
        return await access_page(request, c, 400, [("error", "a grant needs an end (ends at)")])
    known = [m.name for m in c.console.config.models]

    def run(s):
        require(c.actor, "grant.write")
        with _guarded(c, s, "POST /console/grants"):
            return grants.add_grant(s, org, model, starts, ends, reason=form(request, "reason"), by=c.actor.name,
                                    known_models=known)
    return await _do(request, c, run, f"Grant of {model} to {org} added.")


async def revoke_grant(request: Request, c: Ctx) -> Response:
    gid = request.path_params["grant_id"]

    def run(s):
        require(c.actor, "grant.write")
        with _guarded(c, s, f"POST /console/grants/{gid}/revoke"):
            return grants.revoke_grant(s, gid, form(request, "reason"))
    return await _do(request, c, run, f"Grant {gid} revoked.")


# -- orgs, users, keys: the admin API's endpoints -----------------------------------


def _admin_call(endpoint, what: str, body_of=lambda request: {}):
    async def run_call(request: Request, c: Ctx) -> Response:
        call = _Call(dict(request.path_params))
        body = body_of(request)
        subject = ", ".join(request.path_params.values()) or body.get("slug") or body.get("id") or ""
        return await _do(request, c, lambda s: endpoint(call, body, s, c.actor), f"{what}: {subject}.")
    return run_call


async def create_key(request: Request, c: Ctx) -> Response:
    body = {"user": form(request, "user"), "use_case": form(request, "use_case"), "name": form(request, "name")}
    try:
        created, _ = await run_action(request, c, lambda s: admin_api.create_key(_Call({}), body, s, c.actor))
    except ActionError as e:
        return await refused(request, c, e, lambda status, flash: access_page(request, c, status, flash),
                             [("error", f"Not done: {e}")])
    return await access_page(request, c, 201, [("ok", f"Key {created['key_id']} created for {created['user']}: "
                                                     "copy it now, it is not shown again.")], created)


def _new_org(request: Request) -> dict:
    groups = [g.strip() for g in form(request, "groups").split(",") if g.strip()]
    return {"slug": form(request, "slug"), "name": form(request, "name"), "groups": groups}


def _new_user(request: Request) -> dict:
    body = {"id": form(request, "id"), "org": form(request, "org"), "email": form(request, "email"),
            "nationality": form(request, "nationality").upper(), "us_person": form(request, "us_person") == "yes",
            "verified": form(request, "verified") == "yes"}
    body["not_us_person_confirmed"] = not body["us_person"]
    return body


def routes() -> list[Route]:
    verified = lambda v: (lambda request: {"verified": v})  # noqa: E731
    return [
        Route("/access", page(access_page), methods=["GET"]),
        Route("/orgs", action(_admin_call(admin_api.add_org, "Org added", _new_org)), methods=["POST"]),
        Route("/users", action(_admin_call(admin_api.add_user, "User added", _new_user)), methods=["POST"]),
        Route("/approvals", action(request_access), methods=["POST"]),
        Route("/approvals/{approval_id}/approve", action(_decide(approvals.approve_request, "approve", True)),
              methods=["POST"]),
        Route("/approvals/{approval_id}/deny", action(_decide(approvals.deny_request, "deny", False)),
              methods=["POST"]),
        Route("/approvals/{approval_id}/revoke", action(_decide(approvals.revoke_approval, "revoke", True)),
              methods=["POST"]),
        Route("/grants", action(add_grant), methods=["POST"]),
        Route("/grants/{grant_id}/revoke", action(revoke_grant), methods=["POST"]),
        Route("/orgs/{slug}/disable", action(_admin_call(admin_api.disable_org, "Org disabled")),
              methods=["POST"]),
        Route("/orgs/{slug}/enable", action(_admin_call(admin_api.enable_org, "Org enabled")),
              methods=["POST"]),
        Route("/users/{user_id}/disable",
              action(_admin_call(admin_api.disable_user, "User disabled")), methods=["POST"]),
        Route("/users/{user_id}/enable",
              action(_admin_call(admin_api.enable_user, "User enabled")), methods=["POST"]),
        Route("/users/{user_id}/verify", action(_admin_call(admin_api.update_user, "User verified",
                                                            verified(True))), methods=["POST"]),
        Route("/users/{user_id}/unverify",
              action(_admin_call(admin_api.update_user, "User no longer verified",
                                 verified(False))), methods=["POST"]),
        Route("/keys", action(create_key), methods=["POST"]),
        Route("/keys/{key_id}/revoke", action(_admin_call(admin_api.revoke_key, "Key revoked")),
              methods=["POST"]),
    ]

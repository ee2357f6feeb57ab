"""The admin API of usage limits: ``/admin/limits`` (operators set and remove them; every role reads).

The same operations as ``clearance limit``, behind a named administrator's
permission (``limit.write``, ``limit.read``), each change in the audit log.
"""

from __future__ import annotations

from starlette.routing import Route

from clearance.api.admin_auth import admin_endpoint, require
from clearance.api.errors import ApiError, bad_request
from clearance.limits import service

_SCOPES = ("key", "user", "org", "group")


def set_limit(request, body, session, actor, models: frozenset[str], prices: frozenset[str]):
    require(actor, "limit.write")
    chosen = [(s, body[s]) for s in _SCOPES if body.get(s)]
    if body.get("everyone") is True:
        chosen.append(("all", ""))
    if len(chosen) != 1:
        raise bad_request("name exactly one of 'key', 'user', 'org', 'group', or 'everyone': true")
    scope, subject = chosen[0]
    if not isinstance(subject, str):
        raise bad_request(f"'{scope}' must be a string", scope)
    model = body.get("model") or ""
    if not isinstance(model, str) or (model and model not in models):
        raise bad_request(f"no model {model!r}", "model")
    amounts = {a: body.get(a) for a in service.AMOUNTS}
    for name, value in amounts.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise bad_request(f"'{name}' must be a number", name)
    if amounts["spend_per_month_usd"] is not None and model and model not in prices:
        raise bad_request(f"'spend_per_month_usd' needs a price for {model!r} in limits.prices", "spend_per_month_usd")
    try:
        view = service.set_limit(session, scope=scope, subject=subject, model=model, by=actor.label,
                                 on_store_error=body.get("on_store_error") or "deny", **amounts)
    except service.LimitError as e:
        raise ApiError(404 if str(e).startswith("no ") else 400, str(e)) from None
    return view.to_json(), 201


def list_limits(request, body, session, actor):
    require(actor, "limit.read")
    return {"limits": [v.to_json() for v in service.list_limits(session)]}, 200


def remove_limit(request, body, session, actor):
    require(actor, "limit.write")
    try:
        return service.remove_limit(session, request.path_params["limit_id"]).to_json(), 200
    except service.LimitError as e:
        raise ApiError(404, str(e), type="not_found_error", code="not_found") from None


def limit_routes(gw, sessions) -> list[Route]:
    env = gw.config.server.admin_token_env
    models = frozenset(m.name for m in gw.config.models)
    prices = frozenset(gw.config.limits.prices)

    def setter(request, body, session, actor):
        return set_limit(request, body, session, actor, models, prices)

    def r(path, fn, method):
        return Route(path, admin_endpoint(fn, sessions, env, gw.audit), methods=[method])

    return [r("/admin/limits", setter, "POST"), r("/admin/limits", list_limits, "GET"),
            r("/admin/limits/{limit_id}/remove", remove_limit, "POST")]

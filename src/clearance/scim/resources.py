"""Stored users as SCIM ``User`` resources (scim2-models), with the Clearance extension, and back.

The extension ``urn:clearance:params:scim:schemas:extension:identity:2.0:User``
carries ``nationality`` (ISO 3166 alpha-2), ``usPerson`` and ``verified``.
A user's SCIM ``id`` and ``userName`` are its Clearance user id; ``active``
is false for a disabled user.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError
from scim2_models import URN, Context, Extension, Meta, User

from clearance.identity.tables import User as UserRow

EXTENSION_URN = "urn:clearance:params:scim:schemas:extension:identity:2.0:User"
USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"


class ClearanceUser(Extension):
    """The attributes Clearance decides on."""

    __schema__ = URN(EXTENSION_URN)

    nationality: str | None = None
    us_person: bool | None = None
    verified: bool | None = None


ScimUser = User[ClearanceUser]


@dataclass(frozen=True)
class Attributes:
    """What a SCIM resource asks the store to hold."""

    user_id: str
    active: bool
    email: str
    nationality: str | None
    us_person: bool | None
    verified: bool | None


def to_resource(u: UserRow, base_url: str) -> ScimUser:
    payload = {
        "schemas": [USER_URN, EXTENSION_URN], "id": u.id, "userName": u.id, "active": u.disabled_at is None,
        EXTENSION_URN: {"nationality": u.nationality or None, "usPerson": bool(u.us_person),
                        "verified": bool(u.verified)},
    }
    if u.email:
        payload["emails"] = [{"value": u.email, "primary": True}]
    try:
        resource = ScimUser.model_validate(payload)
    except ValidationError:  # an email the store accepted but SCIM does not: leave it out
        payload.pop("emails", None)
        resource = ScimUser.model_validate(payload)
    resource.meta = Meta(resource_type="User", location=f"{base_url}/Users/{u.id}",
                         created=u.created_at)
    return resource


def dump(resource, ctx: Context = Context.RESOURCE_QUERY_RESPONSE) -> dict:
    return resource.model_dump(scim_ctx=ctx)


def attributes(resource: ScimUser) -> Attributes:
    ext = resource[ClearanceUser] or ClearanceUser()
    email = ""
    for e in resource.emails or []:
        if e.primary or not email:
            email = str(e.value or "")
    return Attributes(user_id=resource.user_name or "", active=resource.active is not False, email=email,
                      nationality=ext.nationality, us_person=ext.us_person, verified=ext.verified)

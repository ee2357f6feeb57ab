"""What each administrator role may do on the admin API.

Four roles, each a fixed set of permissions:

- ``operator``: orgs, users and keys, administrators, usage limits; reads everything.
- ``compliance``: directives, approvals, grants, and setting a user's
  ``verified`` (and ``verified_until``); reads everything.
- ``org-admin``: users and keys of its own org only (it may attest
  nationality and US-person status, never ``verified``), and access requests
  for its org.
- ``auditor``: read-only.

``bootstrap`` is the shared admin token: it may only create the first operator.
A permission asked "for an org" is granted to an org-admin only for its own org.
"""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("operator", "compliance", "org-admin", "auditor")

_READ = frozenset({"org.read", "user.read", "key.read", "admin.read", "policy.read", "approval.read", "limit.read"})

PERMISSIONS: dict[str, frozenset[str]] = {
    "operator": _READ | {"org.write", "user.write", "key.write", "admin.write", "limit.write"},
    "compliance": _READ | {"user.verify", "policy.write", "approval.request", "approval.decide", "grant.write"},
    "org-admin": frozenset({"org.read", "user.read", "user.write", "key.read", "key.write", "approval.read",
                            "approval.request"}),
    "auditor": _READ,
    "bootstrap": frozenset(),
}


@dataclass(frozen=True)
class Actor:
    """Who makes a control-plane change: a named administrator, the local CLI user, or an OIDC issuer."""

    name: str
    role: str
    org: str | None = None

    @property
    def label(self) -> str:
        """How the actor is named in the audit log."""
        return self.name if ":" in self.name else f"admin:{self.name}"


def allowed(actor: Actor, permission: str, org: str | None = None) -> bool:
    """Whether ``actor`` holds ``permission`` (for ``org``, when the object belongs to one)."""
    if permission not in PERMISSIONS.get(actor.role, ()):
        return False
    if actor.role == "org-admin":
        return org is not None and org == actor.org
    return True

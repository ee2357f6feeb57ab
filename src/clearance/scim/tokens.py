"""Per-org SCIM bearer tokens: ``clrs_<secret>``, only the SHA-256 stored, one per org.

A token reaches only its own org's users.  Whether SCIM may set a user's
``verified`` is chosen when the token is issued (default: no; verification
stays with the compliance team).
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from clearance.audit.changes import note
from clearance.identity.service import get_org
from clearance.identity.tables import Org

PREFIX = "clrs_"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(session: Session, org: str, trust_verified: bool = False) -> str:
    """A new SCIM token for ``org`` (returned once; the previous one stops working)."""
    row = get_org(session, org)
    before = {"org": org, "scim_token": bool(row.scim_token_hash), "trust_verified": row.scim_trust_verified}
    token = PREFIX + secrets.token_urlsafe(32)
    row.scim_token_hash, row.scim_trust_verified = _hash(token), trust_verified
    note(session, "org.scim_token", f"org:{org}", org, before,
         {"org": org, "scim_token": True, "trust_verified": trust_verified, "token_sha256": row.scim_token_hash})
    return token


def org_of_token(session: Session, token: str) -> Org | None:
    """The org whose SCIM token this is (None for any other string)."""
    if not token.startswith(PREFIX):
        return None
    return session.scalars(select(Org).where(Org.scim_token_hash == _hash(token))).first()

"""Create or refresh a user in the store from a verified token's claims.

Runs the store write in a thread (the event loop never waits on the
database), records the change in the audit log under ``oidc:<issuer>``, and
rebuilds the snapshot so the request that brought the token is decided on
the attributes it carries.  Concurrent requests for the same user share one
provisioning.

A token never changes a user of another org, nor a disabled or deleted
user: those are refused by ``tokens.principal_of``.  An issuer's
``us_person: false`` for a US national is its explicit attestation.
"""

from __future__ import annotations

import asyncio
import logging

from clearance.api.errors import ApiError
from clearance.audit import changes
from clearance.identity import service
from clearance.identity.tables import User

log = logging.getLogger("clearance.identity.provision")


def upsert(sessions, ident) -> list[changes.Change]:
    """Write the token's attributes to the store; returns the changes made (none when nothing differs)."""
    with sessions() as session:
        try:
            user = session.get(User, ident.user_id)
            if user is None:
                service.add_user(session, ident.user_id, ident.org, nationality=ident.nationality,
                                 us_person=ident.us_person, verified=bool(ident.verified), email=ident.email,
                                 not_us_person_confirmed=True, source=ident.issuer)
            elif user.org_slug == ident.org and user.deleted_at is None and user.disabled_at is None:
                service.update_user(session, ident.user_id, nationality=ident.nationality,
                                    us_person=ident.us_person, email=ident.email, verified=ident.verified,
                                    not_us_person_confirmed=True, action="user.refresh")
            session.commit()
        except service.IdentityError as e:  # e.g. the org was removed meanwhile: refused by the caller
            session.rollback()
            log.warning("user not provisioned from token", extra={"user": ident.user_id, "error": str(e)})
            return []
        return changes.take(session)


class Provisioner:
    def __init__(self, sessions, snapshots, audit=None) -> None:
        self.sessions = sessions
        self.snapshots = snapshots
        self.audit = audit
        self._pending: dict[str, asyncio.Task] = {}

    async def provision(self, ident) -> None:
        task = self._pending.get(ident.user_id)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._provision(ident))
            self._pending[ident.user_id] = task
            task.add_done_callback(lambda _t, uid=ident.user_id: self._pending.pop(uid, None))
        try:
            await asyncio.shield(task)
        except Exception as e:  # fail closed, saying so
            log.error("provisioning from token failed", extra={"user": ident.user_id, "error": f"{type(e).__name__}"})
            raise ApiError(503, "the user could not be provisioned from the token; try again", type="api_error",
                           code="provisioning_failed") from None

    async def _provision(self, ident) -> None:
        noted = await asyncio.to_thread(upsert, self.sessions, ident)
        await changes.write(self.audit, noted, f"oidc:{ident.issuer}")
        await asyncio.to_thread(self.snapshots.refresh)  # also picks up another worker's provisioning

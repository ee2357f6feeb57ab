"""Control-plane changes as entries of the Merkle audit log.

A service function that changes the control plane calls ``note(session, ...)``
with the action, the object and the object's state before and after; the
notes wait in the session until the caller (the CLI or the admin API) has
committed the change, then ``entries(session, actor, request_id)`` turns them
into audit entries and ``write_sync`` / ``write`` append them.

A change entry uses the fields of ``AuditEntry`` (whose encoding is fixed, so
old entries and external verifiers keep working) as follows::

    kind               "change"
    principal          the administrator, "admin:<name>" (or "oidc:<issuer>" for users from tokens)
    org                the org the object belongs to ("" when none)
    decision           the action, e.g. "user.disable", "directive.apply"
    reasons            [the object, e.g. "user:alice"]
    prompt_sha256      SHA-256 of the canonical JSON of the state before ("" when created)
    completion_sha256  SHA-256 of the state after ("" when deleted outright)
    status             200
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson

from clearance.types import AuditEntry

log = logging.getLogger("clearance.audit.changes")

_KEY = "clearance.changes"


@dataclass(frozen=True)
class Change:
    action: str
    object: str
    org: str
    before: str  # sha256 hex of the state before, "" when there was none
    after: str


def state_digest(state: dict[str, Any] | None) -> str:
    """SHA-256 of a state's canonical JSON (sorted keys); "" for no state."""
    if state is None:
        return ""
    return hashlib.sha256(orjson.dumps(state, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()


def note(session, action: str, obj: str, org: str, before: dict | None, after: dict | None) -> None:
    """Remember a change made in ``session``; written to the log once the caller commits."""
    session.info.setdefault(_KEY, []).append(Change(action, obj, org or "", state_digest(before),
                                                    state_digest(after)))


def take(session) -> list[Change]:
    """The changes noted in ``session`` since the last call (and forget them)."""
    return session.info.pop(_KEY, [])


def discard(session) -> None:
    session.info.pop(_KEY, None)


def to_entries(changes: list[Change], actor: str, request_id: str = "") -> list[AuditEntry]:
    now = datetime.now(timezone.utc).isoformat(timespec="microseconds")
    return [AuditEntry(time=now, request_id=request_id, kind="change", principal=actor, org=c.org, model="",
                       decision=c.action, reasons=[c.object], prompt_sha256=c.before, completion_sha256=c.after,
                       status=200) for c in changes]


def write_sync(config, engine, changes: list[Change], actor: str, request_id: str = "") -> None:
    """Append ``changes`` from synchronous code (the CLI), on a log opened and closed for the purpose."""
    if not changes or not config.audit.enabled:
        return
    from clearance.audit.log import AuditLog
    from clearance.audit.setup import signer_from_config

    # Change entries carry no prompt or completion: no content key is needed to write them.
    audit = AuditLog(engine, config.audit, signer_from_config(config), None)
    try:
        for e in to_entries(changes, actor, request_id):
            audit.append_sync(e)
    finally:
        audit.close()


async def write(audit, changes: list[Change], actor: str, request_id: str = "") -> None:
    """Append ``changes`` on a running gateway's log (``audit`` may be None when the log is off)."""
    if audit is None or not changes:
        return
    for e in to_entries(changes, actor, request_id):
        await audit.append(e)

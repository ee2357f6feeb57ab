"""The audit entry of a request the API refused before any policy decision (400, 401, 404, 413).

Built from what is known when the refusal is raised: the source address,
the principal when the presented key resolves to one (even revoked or
expired), the model and the prompt's digest when the body was parsed, and
the reason (the error's code).  ``clearance.audit.refused`` bounds how many
are recorded per source.
"""

from __future__ import annotations

from datetime import datetime, timezone

from starlette.requests import Request

from clearance.api.errors import ApiError
from clearance.identity.keys import hash_key
from clearance.types import AuditEntry, ChatRequest

AUDITED = frozenset({400, 401, 404, 413})
REQ_KEY = "clearance.chat_request"  # where a handler keeps the parsed request in the ASGI scope
_MAX_ERROR_CHARS = 300


def refused_entry(gw, request: Request, rid: str, crid: str, err: ApiError, api_key: str | None) -> AuditEntry:
    from clearance.pipeline import prompt_digest

    principal = None
    snapshot = gw.snapshots.current
    if api_key:
        record = snapshot.keys.get(hash_key(api_key))
        principal = record.principal if record is not None else None
    req: ChatRequest | None = request.scope.get(REQ_KEY)
    client = request.scope.get("client")
    return AuditEntry(
        time=datetime.now(timezone.utc).isoformat(timespec="microseconds"), request_id=rid, kind="refused",
        principal=principal.user_id if principal else "", org=principal.org_id if principal else "",
        model=req.model[:200] if req is not None else "", decision="refused", reasons=[err.code],
        snapshot=snapshot.hash, prompt_sha256=prompt_digest(req) if req is not None else "",
        status=err.status, error=err.message[:_MAX_ERROR_CHARS], client_request_id=crid,
        source=client[0] if client else "")

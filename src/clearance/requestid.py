"""Request ids: the gateway makes every one; a client's own id is only ever kept beside it.

``new_request_id()`` is unique across workers (a random per-process prefix and
a counter).  A client's ``x-request-id`` is never used as the gateway's id (an
id chosen by the client could be re-used to merge unrelated audit entries);
when it is well formed it is kept as ``client_request_id`` in the audit entry
and echoed back in ``x-client-request-id``.
"""

from __future__ import annotations

import itertools
import re
import secrets

PREFIX = "req_" + secrets.token_hex(6)  # unique per process
_counter = itertools.count(1)
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def new_request_id() -> str:
    """A fresh request id, unique across the gateway's workers."""
    return f"{PREFIX}{next(_counter):010x}"


def client_request_id(value: str | None) -> str:
    """The client's request id when it is well formed (1-128 of ``A-Za-z0-9._:-``), else ``""``."""
    return value if value and _CLIENT_ID.fullmatch(value) else ""

"""Small helpers shared by the control-plane modules: ISO formatting and lookups of orgs and ids."""

from __future__ import annotations

import secrets
from collections.abc import Collection
from datetime import datetime

from sqlalchemy.orm import Session

from clearance.identity.tables import Org
from clearance.policy.errors import InvalidRequest


def iso(d: datetime | None) -> str | None:
    return d.isoformat().replace("+00:00", "Z") if d else None


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


def check_org_and_model(session: Session, org: str, model: str, known_models: Collection[str] | None) -> None:
    if not org or session.get(Org, org) is None:
        raise InvalidRequest(f"unknown org {org!r}")
    if not model:
        raise InvalidRequest("model is required")
    if known_models is not None and model not in known_models:
        raise InvalidRequest(f"unknown model {model!r}; known: {sorted(known_models)}")

"""The control-plane version: bumped by every change, polled by every worker.

A worker compares the stored version with the one its snapshot was built
from and rebuilds when they differ.  Reading it is one primary-key lookup.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from clearance.identity.tables import StateVersion


def bump_version(session: Session) -> None:
    """Mark the control plane changed; call inside the transaction that changes it."""
    session.execute(update(StateVersion).where(StateVersion.id == 1).values(version=StateVersion.version + 1))


def current_version(session: Session) -> int:
    return session.execute(select(StateVersion.version).where(StateVersion.id == 1)).scalar_one()

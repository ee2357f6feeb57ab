"""Fixtures for the audit tests: entries, and a migrated store on SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import pg_database
from sqlalchemy import Engine

from clearance.store.db import make_engine, migrate
from clearance.types import AuditEntry



def make_entry(i: int, decision: str = "allow", model: str = "gpt-test", org: str = "acme",
               reasons: list[str] | None = None) -> AuditEntry:
    return AuditEntry(
        time=f"2025-01-01T00:00:{i % 60:02d}Z", request_id=f"req-{i}", kind="decision", principal=f"user-{i % 3}",
        org=org, model=model, decision=decision, reasons=list(reasons or []), guard={"jailbreak": 0.01 * (i % 7)},
        prompt_sha256=f"{i:064x}", prompt_tokens=i, latency_ms=1.5,
    )


@pytest.fixture
def entry():
    return make_entry


def count_batches(log) -> list[int]:
    """Record the size of every batch ``log`` commits (on the writer thread or on the event loop)."""
    sizes: list[int] = []
    commit = log._commit

    def counted(dbapi, batch, blocking=True):
        sizes.append(len(batch))
        return commit(dbapi, batch, blocking)

    log._commit = counted
    return sizes




@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
    else:
        yield from pg_database()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    migrate(eng)
    yield eng
    eng.dispose()

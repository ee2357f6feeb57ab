"""Fixtures for policy unit tests: a migrated SQLite store holding the demo world, and its config."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_fixtures import CRITICAL, PERSONAS, T0, make_config

from clearance.config import Config
from clearance.identity.tables import Org, OrgGroup, OrgGroupMember, User
from clearance.store.db import make_engine, make_sessionmaker, migrate


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path)


@pytest.fixture
def sessions(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    migrate(engine)
    maker = make_sessionmaker(engine)
    with maker.begin() as s:
        s.add(OrgGroup(slug="critical-infrastructure", name="Critical infrastructure"))
        for slug in {org for org, _, _ in PERSONAS.values()}:
            s.add(Org(slug=slug, name=slug, created_at=T0))
        s.flush()
        for slug in CRITICAL:
            s.add(OrgGroupMember(org_slug=slug, group_slug="critical-infrastructure"))
        for uid, (org, nat, us) in PERSONAS.items():
            s.add(User(id=uid, org_slug=org, email=f"{uid}@example.org", nationality=nat, us_person=us,
                       verified=True, created_at=T0, attributes={}))
    yield maker
    engine.dispose()

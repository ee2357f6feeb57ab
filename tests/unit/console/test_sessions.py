"""Console sessions: bound to the administrator and its token; idle and absolute expiry; CSRF comparison."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from clearance.console import sessions as cs
from clearance.identity import admins, service
from clearance.store.db import make_engine, make_sessionmaker, migrate


@pytest.fixture
def store(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    migrate(engine)
    sessions = make_sessionmaker(engine)
    with sessions() as s:
        token = admins.add_admin(s, "comp", "compliance").token
        s.commit()
    yield sessions, token
    engine.dispose()


def _open(sessions, token, hours=8.0):
    with sessions() as s:
        sid, actor = cs.sign_in(s, token, hours)
        s.commit()
    return sid, actor


def test_sign_in_gives_a_session_bound_to_the_administrator(store):
    sessions, token = store
    sid, actor = _open(sessions, token)
    assert actor.name == "comp" and actor.role == "compliance"
    with sessions() as s:
        live = cs.lookup(s, sid, idle_minutes=30)
        assert live is not None and live.actor == actor and len(live.csrf) >= 32
        row = s.get(cs.ConsoleSession, cs._hash(sid))
        assert row is not None and sid not in (row.id_hash, row.csrf)  # only the id's hash is stored


def test_a_wrong_token_does_not_sign_in(store):
    sessions, _ = store
    with sessions() as s, pytest.raises(admins.AdminAuthError):
        cs.sign_in(s, "clra_a0000_nope", 8)


def test_sessions_expire_when_idle_and_after_their_lifetime(store):
    sessions, token = store
    now = datetime.now(timezone.utc)
    sid, _ = _open(sessions, token, hours=8)
    with sessions() as s:
        assert cs.lookup(s, sid, 30, now=now + timedelta(minutes=29)) is not None  # touches last_seen
    sid2, _ = _open(sessions, token, hours=8)
    with sessions() as s:
        assert cs.lookup(s, sid2, 30, now=now + timedelta(minutes=31)) is None  # idle
        assert cs.lookup(s, sid2, 30) is None  # and ended for good
    sid3, _ = _open(sessions, token, hours=1)
    with sessions() as s:
        assert cs.lookup(s, sid3, 24 * 60, now=now + timedelta(minutes=61)) is None  # absolute lifetime


def test_rotating_or_disabling_the_administrator_ends_its_sessions(store):
    sessions, token = store
    sid, _ = _open(sessions, token)
    with sessions() as s:
        admins.rotate_token(s, "comp")
        s.commit()
        assert cs.lookup(s, sid, 30) is None
        new = admins.rotate_token(s, "comp").token
        s.commit()
    sid, _ = _open(sessions, new)
    with sessions() as s:
        admins.set_admin_disabled(s, "comp", True)
        s.commit()
        assert cs.lookup(s, sid, 30) is None


def test_sign_out_ends_the_session(store):
    sessions, token = store
    sid, _ = _open(sessions, token)
    with sessions() as s:
        assert cs.sign_out(s, sid) == "comp"
        s.commit()
        assert cs.lookup(s, sid, 30) is None
        assert cs.sign_out(s, sid) is None


def test_csrf_comparison():
    assert cs.csrf_ok("abc", "abc")
    assert not cs.csrf_ok("abc", "abd") and not cs.csrf_ok("abc", "") and not cs.csrf_ok("abc", None)

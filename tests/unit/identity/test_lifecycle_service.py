"""The identity service on a migrated SQLite store: validation, lifecycle, tombstones and change notes."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from clearance.audit import changes
from clearance.config import Config
from clearance.identity import admins, service
from clearance.identity.roles import Actor, allowed
from clearance.identity.service import IdentityError
from clearance.snapshot import build_snapshot
from clearance.store.db import make_engine, make_sessionmaker, migrate
from clearance.store.version import current_version


@pytest.fixture
def sessions(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    migrate(engine)
    maker = make_sessionmaker(engine)
    with maker.begin() as s:
        service.add_org(s, "acme", groups=["critical-infrastructure"])
        service.add_org(s, "gridco")
        changes.take(s)
    yield maker
    engine.dispose()


@pytest.mark.parametrize("code", ["XX", "ZZ", "USA", "1A", "U"])
def test_nationality_must_be_an_iso_country(sessions, code):
    with sessions() as s, pytest.raises(IdentityError, match="ISO 3166"):
        service.add_user(s, "u1", "acme", nationality=code, us_person=True)


def test_nationality_is_upper_cased_and_known(sessions):
    with sessions.begin() as s:
        assert service.add_user(s, "u1", "acme", nationality="gb").nationality == "GB"


def test_a_us_national_who_is_not_a_us_person_needs_confirmation(sessions):
    with sessions() as s, pytest.raises(IdentityError, match="US person"):
        service.add_user(s, "u1", "acme", nationality="US")
    with sessions.begin() as s:
        assert not service.add_user(s, "u1", "acme", nationality="US", not_us_person_confirmed=True).us_person
        service.add_user(s, "u2", "acme", nationality="DE")
    with sessions() as s, pytest.raises(IdentityError, match="US person"):
        service.update_user(s, "u2", nationality="US")
    with sessions.begin() as s:
        assert service.update_user(s, "u2", nationality="US", us_person=True).us_person


def test_update_notes_the_change_and_bumps_the_version_only_when_something_changed(sessions):
    with sessions.begin() as s:
        service.add_user(s, "u1", "acme", nationality="DE")
        changes.take(s)
        v0 = current_version(s)
        service.update_user(s, "u1", nationality="DE")
        assert changes.take(s) == [] and current_version(s) == v0
        service.update_user(s, "u1", verified=True)
        noted = changes.take(s)
        assert [c.action for c in noted] == ["user.update"] and current_version(s) > v0
        assert noted[0].before and noted[0].after and noted[0].before != noted[0].after and noted[0].org == "acme"


def test_delete_is_a_tombstone_that_revokes_keys(sessions):
    with sessions.begin() as s:
        service.add_user(s, "u1", "acme", nationality="DE")
        k = service.create_key(s, "u1")
        changes.take(s)
        service.delete_user(s, "u1")
        assert [c.action for c in changes.take(s)] == ["key.revoke", "user.delete"]
    with sessions() as s:
        assert service.list_keys(s, "u1")[0].revoked_at is not None
        assert service.list_users(s) == [] and [u.id for u in service.list_users(s, include_deleted=True)] == ["u1"]
        for fn in (lambda: service.update_user(s, "u1", verified=True), lambda: service.create_key(s, "u1"),
                   lambda: service.add_user(s, "u1", "acme")):
            with pytest.raises(IdentityError) as e:
                fn()
            assert e.value.status == 409
    assert k.key.startswith("clr_")


def test_snapshot_refuses_disabled_users_and_orgs_and_lapses_verification(sessions):
    config = Config.model_validate({"policy": {"enabled": False}})
    with sessions.begin() as s:
        service.add_user(s, "u1", "acme", nationality="DE", verified=True,
                         verified_until=datetime(2001, 1, 1, tzinfo=timezone.utc))
        service.add_user(s, "u2", "gridco", nationality="DE", verified=True)
        service.create_key(s, "u1")
        service.create_key(s, "u2")
        service.set_user_disabled(s, "u1", True)
        service.set_org_disabled(s, "gridco", True)
    snap = build_snapshot(sessions, config)
    refusals = {r.principal.user_id: r.refusal for r in snap.keys.values()}
    assert refusals == {"u1": "user_disabled", "u2": "org_disabled"}
    assert snap.users["u1"].verified is False and snap.users["u2"].verified is True
    assert snap.orgs["acme"].groups == ("critical-infrastructure",) and snap.orgs["gridco"].disabled
    with sessions.begin() as s:
        service.set_user_disabled(s, "u1", False)
        service.set_org_disabled(s, "gridco", False)
    assert {r.refusal for r in build_snapshot(sessions, config).keys.values()} == {""}


def test_admin_tokens_are_hashed_and_expire(sessions):
    from datetime import timedelta

    with sessions.begin() as s:
        c = admins.add_admin(s, "oa", "org-admin", org="acme")
        gone = admins.add_admin(s, "old", "auditor", lifetime=timedelta(seconds=-1))
    with sessions() as s:
        assert admins.get_admin(s, "oa").token_hash != c.token and c.token not in str(admins.admin_state(
            admins.get_admin(s, "oa")))
        assert admins.authenticate(s, c.token) == Actor("oa", "org-admin", "acme")
        with pytest.raises(admins.AdminAuthError, match="expired"):
            admins.authenticate(s, gone.token)
        with pytest.raises(admins.AdminAuthError):
            admins.authenticate(s, c.token + "x")
    with sessions.begin() as s:
        rotated = admins.rotate_token(s, "oa")
    with sessions() as s:
        with pytest.raises(admins.AdminAuthError):
            admins.authenticate(s, c.token)
        assert admins.authenticate(s, rotated.token).name == "oa"
    for role, org, err in [("wizard", None, "unknown role"), ("org-admin", None, "needs an org"),
                           ("auditor", "acme", "only an org-admin")]:
        with sessions() as s, pytest.raises(IdentityError, match=err):
            admins.add_admin(s, "x", role, org=org)


def test_role_permissions():
    oa = Actor("oa", "org-admin", "acme")
    assert allowed(oa, "user.write", "acme") and not allowed(oa, "user.write", "gridco")
    assert not allowed(oa, "user.write") and not allowed(oa, "user.verify", "acme")
    assert not allowed(oa, "policy.write") and allowed(oa, "approval.request", "acme")
    comp = Actor("c", "compliance")
    assert allowed(comp, "user.verify", "acme") and not allowed(comp, "user.write", "acme")
    assert allowed(comp, "policy.write") and not allowed(comp, "admin.write")
    op = Actor("o", "operator")
    assert allowed(op, "org.write") and allowed(op, "admin.write") and not allowed(op, "user.verify")
    aud = Actor("a", "auditor")
    assert allowed(aud, "user.read", "gridco") and not any(
        allowed(aud, p) for p in ("org.write", "user.write", "key.write", "policy.write", "admin.write"))
    assert not allowed(Actor("bootstrap", "bootstrap"), "org.read")

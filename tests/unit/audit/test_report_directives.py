"""``audit report``: per directive, the time from its effective instant to its first enforced denial."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy.orm import Session

from clearance.audit.log import AuditLog
from clearance.audit.report import build_report
from clearance.audit.settings import AuditSettings
from clearance.policy.directives import apply_directive, revoke_directive
from clearance.types import AuditEntry

SUSPEND = ('forbid (principal, action, resource in Clearance::ModelFamily::"frontier")\n'
           "unless { principal.us_person };\n")


def apply(engine, id_: str, effective: datetime, revoke: bool = False) -> None:
    with Session(engine) as s, s.begin():
        apply_directive(s, SUSPEND, id=id_, title=f"Directive {id_}", authority="Commerce", effective_at=effective)
        if revoke:
            revoke_directive(s, id_, "lifted")


def log(engine, rows: list[tuple[datetime, str, list[str]]]) -> list[int]:
    audit = AuditLog(engine, AuditSettings())
    return [audit.append_sync(AuditEntry(time=t.isoformat(), request_id=f"r{i}", kind="decision",
                                         principal="intl-researcher", org="eu-lab", model="frontier-general",
                                         decision=d, reasons=reasons))
            for i, (t, d, reasons) in enumerate(rows)]


def test_time_to_first_enforced_denial_per_directive(engine):
    now = datetime.now(timezone.utc)
    eff = now - timedelta(seconds=30)
    apply(engine, "EO-1", eff)
    apply(engine, "EO-2", now - timedelta(seconds=20))  # in force, never enforced yet
    idx = log(engine, [
        (eff - timedelta(seconds=1), "deny", ["EO-1"]),          # before the effective instant: not enforcement
        (eff + timedelta(seconds=1), "allow", ["demo-general"]),  # still served
        (eff + timedelta(seconds=2), "deny", ["default-deny"]),   # denied by something else
        (eff + timedelta(seconds=3.25), "deny", ["EO-1"]),        # the first enforced denial
        (eff + timedelta(seconds=4), "deny", ["EO-1"]),
    ])
    rep = build_report(engine)
    d1, d2 = rep["directives"]["EO-1"], rep["directives"]["EO-2"]
    assert d1["seconds_to_first_denial"] == 3.25
    assert d1["first_denial_entry"] == idx[3] and d1["first_denial_request"] == "r3"
    assert d1["denials_in_window"] == 2 and d1["title"] == "Directive EO-1" and d1["authority"] == "Commerce"
    assert d2["first_denial"] is None and d2["seconds_to_first_denial"] is None
    assert rep["by_rule"]["EO-1"]["denials"] == 3  # the rule view counts every entry naming it


def test_window_selects_directives_in_force_and_searches_from_effective(engine):
    now = datetime.now(timezone.utc)
    apply(engine, "OLD", now - timedelta(days=3), revoke=True)  # revoked now: in force until now
    apply(engine, "LATER", now + timedelta(days=1))  # not yet in force
    log(engine, [(now - timedelta(days=3) + timedelta(seconds=5), "deny", ["OLD"])])
    rep = build_report(engine, since=now + timedelta(seconds=5))
    assert rep["directives"]["LATER"]["first_denial"] is None  # pending during the window
    assert "OLD" not in rep["directives"]  # ended before the window
    rep = build_report(engine, since=now - timedelta(hours=1))
    assert rep["directives"]["OLD"]["seconds_to_first_denial"] == 5.0
    assert rep["directives"]["OLD"]["revoked_at"] is not None
    rep = build_report(engine, until=now - timedelta(days=4))
    assert rep["directives"] == {}


def test_no_directives(engine):
    log(engine, [(datetime.now(timezone.utc), "deny", ["default-deny"])])
    assert build_report(engine)["directives"] == {}

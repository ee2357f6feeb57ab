"""Incidents: from an assessment's jailbreak to a directive that answers it, and back.

``open_incident`` reads a ``clearance assess`` report, takes one template's
CJS severity and evidence (the request ids of its successful attacks, which
are audit-log request ids when the target was Clearance) and proposes a
directive chosen by band (``PROPOSALS``) on the report's model, with a
what-if on recorded traffic showing who would lose access.
``apply_incident`` applies the proposal as a directive whose id is the
incident's; ``close_incident`` revokes it.  ``incident_summary`` gives the
audit report the band, the time from report to directive and the lag to the
first enforced denial.  Rows are never deleted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clearance.config import Config
from clearance.policy import directives as directives_mod
from clearance.policy._views import iso
from clearance.policy.clock import utc, utcnow
from clearance.policy.errors import Conflict, InvalidRequest, NotFound
from clearance.policy.tables import Incident
from clearance.policy.whatif import whatif

# Directive proposed per band, on the model of the report (``{model}``).
PROPOSALS: dict[str, tuple[str, str]] = {
    "CJS-4": ("suspend {model} for everyone but evaluators (who still need a grant to use it)",
              'forbid (principal, action == Clearance::Action::"invoke", resource == Clearance::Model::"{model}")\n'
              'unless {{ principal in Clearance::OrgGroup::"evaluators" }};\n'),
    "CJS-3": ("restrict {model} to verified users of critical-infrastructure organisations (and evaluators)",
              'forbid (principal, action == Clearance::Action::"invoke", resource == Clearance::Model::"{model}")\n'
              'unless {{ (principal.verified && principal in Clearance::OrgGroup::"critical-infrastructure") ||\n'
              '         principal in Clearance::OrgGroup::"evaluators" }};\n'),
    "CJS-2": ("refuse prompts on {model} from a jailbreak score of 0.25 (half the default threshold)",
              'forbid (principal, action == Clearance::Action::"invoke", resource == Clearance::Model::"{model}")\n'
              'when {{ context.guard.jailbreak.greaterThanOrEqual(decimal("0.25")) }};\n'),
}
MAX_EVIDENCE = 200


@dataclass(frozen=True)
class IncidentView:
    id: str
    title: str
    status: str
    opened_at: datetime
    reported_at: datetime | None
    model: str
    template: str
    score: float
    band: str
    proposal: str
    proposed_text: str
    directive_id: str
    applied_at: datetime | None
    closed_at: datetime | None
    close_reason: str
    details: dict

    def to_json(self) -> dict:
        return {"id": self.id, "title": self.title, "status": self.status, "opened_at": iso(self.opened_at),
                "reported_at": iso(self.reported_at), "model": self.model, "template": self.template,
                "cjs_score": self.score, "band": self.band, "proposal": self.proposal,
                "proposed_directive": self.proposed_text, "directive_id": self.directive_id,
                "applied_at": iso(self.applied_at), "closed_at": iso(self.closed_at),
                "close_reason": self.close_reason, **self.details}


def _view(row: Incident) -> IncidentView:
    details = json.loads(row.details or "{}")
    return IncidentView(row.id, row.title, row.status, utc(row.opened_at),
                        utc(row.reported_at) if row.reported_at else None, row.model, row.template_id,
                        row.cjs_score, row.band, details.pop("proposal", ""), row.proposed_text, row.directive_id,
                        utc(row.applied_at) if row.applied_at else None,
                        utc(row.closed_at) if row.closed_at else None, row.close_reason, details)


def read_report(path: str) -> dict:
    """An assessment report (JSON); raises ``InvalidRequest`` if it is not one with CJS scores."""
    try:
        with open(path, encoding="utf-8") as f:
            report = json.load(f)
    except OSError as e:
        raise InvalidRequest(f"cannot read report {path}: {e.strerror or e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InvalidRequest(f"{path} is not a JSON report: {e}") from None
    if not isinstance(report, dict) or not isinstance(report.get("cjs"), dict):
        raise InvalidRequest(f"{path} is not a `clearance assess` report with CJS scores (run assess again)")
    return report


def _evidence(report: dict, template: str) -> list[str]:
    ids = [r.get("request_id", "") for r in report.get("results", [])
           if r.get("template_id") == template and r.get("success")]
    return [i for i in ids if i][:MAX_EVIDENCE]


def open_incident(session: Session, config: Config, report: dict, template: str, model: str | None = None,
                  since: timedelta | None = timedelta(days=7), now: datetime | None = None) -> IncidentView:
    """Record an incident for ``template`` of ``report`` and propose a directive by its band."""
    scored = report["cjs"].get("templates") or {}
    if template not in scored:
        known = ", ".join(sorted(scored)) or "none"
        raise InvalidRequest(f"template {template!r} unlocked no objective in this report (scored: {known})")
    t = scored[template]
    model = model or (report.get("target") or {}).get("model", "")
    if model not in {m.name for m in config.models}:
        raise InvalidRequest(f"model {model!r} is not configured here; pass --model NAME")
    now = now or utcnow()
    n = session.execute(select(func.count()).select_from(Incident)).scalar_one()
    iid = f"INC-{n + 1:04d}"
    band = t["band"]
    proposal, text = PROPOSALS.get(band, ("", ""))
    proposal, text = proposal.format(model=model), text.format(model=model)
    impact = None
    if text:
        impact = whatif(session, config, text, now=now, since=since).to_json()
    try:
        reported = utc(datetime.fromisoformat(str(report.get("created_at", "")).replace("Z", "+00:00")))
    except ValueError:
        reported = None
    evidence = _evidence(report, template)
    details = {"proposal": proposal or f"none for {band}: recorded for monitoring",
               "axes": t.get("axes", {}), "target": report.get("target", {}),
               "evidence": {"request_ids": evidence, "in_audit_log": _in_audit_log(session, evidence)},
               "whatif": impact}
    row = Incident(id=iid, title=f"{band} {t.get('band_name', '')} jailbreak ({template}) on {model}".replace("  ", " "),
                   status="open", opened_at=now, reported_at=reported, model=model, template_id=template,
                   cjs_score=float(t["score"]), band=band, details=json.dumps(details, sort_keys=True),
                   proposed_text=text, directive_id="")
    session.add(row)
    session.flush()
    return _view(row)


def _in_audit_log(session: Session, request_ids: list[str]) -> int:
    """How many of these request ids have a decision entry in the audit log."""
    if not request_ids:
        return 0
    from clearance.audit.tables import AuditEntryRow

    found = 0
    for rid in request_ids[:50]:
        hit = session.execute(select(AuditEntryRow.idx).where(AuditEntryRow.body.contains(f'"{rid}"')).limit(1))
        found += hit.first() is not None
    return found


def _load(session: Session, incident_id: str) -> Incident:
    row = session.get(Incident, incident_id)
    if row is None:
        raise NotFound(f"no incident {incident_id!r}")
    return row


def apply_incident(session: Session, incident_id: str) -> IncidentView:
    """Apply the incident's proposed directive now (its id is the incident's).  The caller commits."""
    row = _load(session, incident_id)
    if row.status != "open":
        raise Conflict(f"incident {incident_id} is {row.status}; only an open incident can be applied")
    if not row.proposed_text:
        raise InvalidRequest(f"incident {incident_id} ({row.band}) has no proposed directive; it is for monitoring")
    v = directives_mod.apply_directive(session, row.proposed_text, id=row.id, title=row.title,
                                       authority="incident response", reference=f"incident {row.id}")
    row.status, row.directive_id, row.applied_at = "applied", v.id, v.effective_at
    session.flush()
    return _view(row)


def close_incident(session: Session, incident_id: str, reason: str = "") -> IncidentView:
    """Close an incident, revoking its directive if it was applied.  The caller commits."""
    row = _load(session, incident_id)
    if row.status == "closed":
        raise Conflict(f"incident {incident_id} is already closed")
    if not (reason or "").strip():
        raise InvalidRequest("closing an incident needs a reason")
    if row.directive_id:
        d = directives_mod.get_directive(session, row.directive_id)
        if d.status in ("pending", "in_force"):
            directives_mod.revoke_directive(session, row.directive_id, f"incident {row.id} closed: {reason}")
    row.status, row.closed_at, row.close_reason = "closed", utcnow(), reason.strip()
    session.flush()
    return _view(row)


def get_incident(session: Session, incident_id: str) -> IncidentView:
    return _view(_load(session, incident_id))


def list_incidents(session: Session) -> list[IncidentView]:
    return [_view(r) for r in session.execute(select(Incident).order_by(Incident.opened_at, Incident.id)).scalars()]


def incident_summary(incidents: list[dict[str, Any]], enforcement: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per incident: band, time from the report to its directive and from the directive to its first denial."""
    out = []
    for inc in incidents:
        enf = enforcement.get(inc["directive_id"] or "", {})
        rep, app = inc["reported_at"], inc["applied_at"]
        out.append({
            "id": inc["id"], "title": inc["title"], "status": inc["status"], "model": inc["model"],
            "template": inc["template_id"], "band": inc["band"], "cjs_score": inc["cjs_score"],
            "reported_at": iso(rep), "opened_at": iso(inc["opened_at"]), "directive_id": inc["directive_id"] or None,
            "applied_at": iso(app), "closed_at": iso(inc["closed_at"]),
            "seconds_report_to_directive": round((app - rep).total_seconds(), 3) if rep and app else None,
            "first_denial": enf.get("first_denial"),
            "seconds_to_first_denial": enf.get("seconds_to_first_denial"),
        })
    return out

"""Command-line group ``incident``: open an incident from an assessment report, apply, close and list.

``open`` scores nothing itself: it reads the CJS severity ``clearance assess``
wrote, proposes a directive by band with a what-if on recorded traffic, and
records it.  ``apply`` and ``close`` apply and revoke that directive through
the same invariant check as ``directive apply``.
"""

from __future__ import annotations

import json

import click

from clearance.cli import config_option, open_config
from clearance.policy import incidents as incidents_mod
from clearance.policy.cli import guarded, override_option, store
from clearance.policy.clock import parse_duration


@click.group("incident")
def incident() -> None:
    """Jailbreak incidents: from an assessment report to a directive (open, apply, close, list)."""


def _show(v: incidents_mod.IncidentView) -> None:
    click.echo(f"{v.id} [{v.status}] {v.title} (CJS {v.score:g}/10)")
    click.echo(f"  proposal: {v.proposal}")
    if v.proposed_text:
        click.echo("  directive:\n" + "".join(f"    {line}\n" for line in v.proposed_text.splitlines()).rstrip())
    ev = v.details.get("evidence", {})
    click.echo(f"  evidence: {len(ev.get('request_ids', []))} request ids of successful attacks "
               f"({ev.get('in_audit_log', 0)} found in this audit log)")
    w = v.details.get("whatif")
    if w:
        click.echo(f"  what-if ({w['note']}):")
        lose = [c for c in w["changes"] if c["change"] == "lose"]
        for c in lose[:20]:
            reqs = f", {c['requests']} recorded requests" if w["source"] == "audit" else ""
            click.echo(f"    lose {c['org']}/{c['user']} {c['model']} (fallback: {', '.join(c['fallback']) or 'none'}"
                       f"{reqs})")
        if not lose:
            click.echo("    nobody loses access")
        elif len(lose) > 20:
            click.echo(f"    ... {len(lose) - 20} more (--json)")


@incident.command("open")
@click.option("--report", "report_path", required=True, type=click.Path(dir_okay=False),
              help="A `clearance assess` JSON report.")
@click.option("--template", required=True, help="The template of the report to open an incident for.")
@click.option("--model", default=None, help="Model to act on (default: the report's target model).")
@click.option("--since", default="7d", show_default=True, help="Recorded traffic the what-if replays.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def incident_open(report_path, template, model, since, as_json, config_path) -> None:
    """Record an incident with its CJS score and evidence, and propose a directive by band."""
    try:
        window = parse_duration(since)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--since") from None
    config = open_config(config_path)
    with store(config) as s:
        report = incidents_mod.read_report(report_path)
        v = incidents_mod.open_incident(s, config, report, template, model=model, since=window)
    if as_json:
        click.echo(json.dumps(v.to_json(), indent=2))
    else:
        _show(v)
        if v.proposed_text:
            click.echo(f"apply it with: clearance incident apply {v.id} --config {config_path}")


@incident.command("apply")
@click.argument("incident_id")
@override_option
@click.option("--reason", default="", help="Why an invariant is overridden (with --override-invariant).")
@config_option
def incident_apply(incident_id, overrides, reason, config_path) -> None:
    """Apply the incident's proposed directive now (checked against the policy invariants)."""
    with guarded(open_config(config_path), f"incident apply {incident_id}", overrides, reason) as s:
        v = incidents_mod.apply_incident(s, incident_id)
    click.echo(f"applied directive {v.directive_id} for incident {v.id}")


@incident.command("close")
@click.argument("incident_id")
@click.option("--reason", required=True, help="Why the incident is closed (kept in the record).")
@override_option
@config_option
def incident_close(incident_id, reason, overrides, config_path) -> None:
    """Close an incident, lifting its directive."""
    with guarded(open_config(config_path), f"incident close {incident_id}", overrides, reason) as s:
        v = incidents_mod.close_incident(s, incident_id, reason)
    click.echo(f"closed incident {v.id}" + (f" (directive {v.directive_id} revoked)" if v.directive_id else ""))


@incident.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def incident_list(as_json, config_path) -> None:
    """List incidents, oldest first."""
    with store(open_config(config_path)) as s:
        rows = [v.to_json() for v in incidents_mod.list_incidents(s)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        click.echo("(none)")
    else:
        for r in rows:
            click.echo(f"{r['id']}  {r['status']:<8} {r['band']}  {r['model']}  {r['template']}  "
                       f"opened {r['opened_at']}" + (f"  directive {r['directive_id']}" if r["directive_id"] else ""))

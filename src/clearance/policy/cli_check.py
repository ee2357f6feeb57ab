"""Command-line group ``policy``: prove the policy invariants (``check``) and list overrides.

``clearance policy check`` compiles the store and config as the gateway does
and proves every invariant of ``--invariants FILE`` (default: the config's
``policy.invariants``) at the current time and after, or prints a
counterexample.  Exit status 0 when every invariant holds, 1 when one is
violated or cannot be decided (fail closed).
"""

from __future__ import annotations

import json
import sys

import click

from clearance.cli import config_option, open_config
from clearance.policy.check import CheckReport, check_invariants
from clearance.policy.cli import _instant, store
from clearance.policy.clock import utcnow
from clearance.policy.enforce import list_overrides
from clearance.policy.invariants import InvariantError, load_invariants
from clearance.policy.world import load_world


@click.group("policy")
def policy() -> None:
    """Policy invariants: prove them against the store, list overrides."""


def render(report: CheckReport) -> str:
    """The report as text, one invariant per line, counterexamples indented."""
    lines = []
    for r in report.results:
        mark = {"holds": "ok  ", "violated": "FAIL", "undecidable": "????"}[r.status]
        lines.append(f"{mark} {r.id} ({r.kind}){': ' + r.title if r.title else ''}")
        if r.counterexample is not None:
            lines.append(f"     counterexample: {r.counterexample.describe()}")
            if r.counterexample.class_size > 1:
                lines.append(f"     ({r.counterexample.class_size - 1} other users get the same decisions)")
        if r.reason:
            lines.append(f"     {r.reason}")
        if r.status == "holds" and r.pairs == 0:
            lines.append("     note: no (user, model) pair in the store matches it, so it holds vacuously")
    held = sum(r.status == "holds" for r in report.results)
    lines.append(f"{held}/{len(report.results)} invariants hold over {report.users} users "
                 f"({report.classes} principal classes) and {report.models} models, from {report.now.isoformat()} "
                 f"on; snapshot {report.snapshot_hash[:12]}; {report.seconds:.2f}s")
    return "\n".join(lines)


@policy.command("check")
@click.option("--invariants", "path", type=click.Path(dir_okay=False),
              help="YAML file of invariants (default: the config's policy.invariants).")
@click.option("--at", "at", callback=_instant, help="Check from this ISO 8601 instant on (default: now).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def policy_check(path, at, as_json, config_path) -> None:
    """Prove every invariant against the current policies and store, or print a counterexample."""
    config = open_config(config_path)
    if path is None:
        if not config.policy.invariants:
            raise click.ClickException("no invariants: pass --invariants FILE or set policy.invariants in the config")
        path = str(config.resolve(config.policy.invariants))
    try:
        invariants = load_invariants(path)
    except InvariantError as e:
        raise click.ClickException(str(e)) from None
    now = at or utcnow()
    with store(config) as s:
        world = load_world(s, config, now=now)
    report = check_invariants(world, invariants, now=now)
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else render(report))
    sys.exit(0 if report.ok else 1)


@policy.command("overrides")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def policy_overrides(as_json, config_path) -> None:
    """Changes applied although they broke an invariant: when, which, by whom and why."""
    with store(open_config(config_path)) as s:
        rows = list_overrides(s)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("(none)")
    for r in rows:
        click.echo(f"{r['at']}  {r['invariant']}  {r['change']}  by {r['by'] or '-'}: {r['reason']}")

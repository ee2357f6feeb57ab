"""Command-line groups of the policy area: ``directive``, ``approval`` and ``grant``.

Each command opens the store named by the config, calls one function of
``directives.py``, ``approvals.py``, ``grants.py`` or ``whatif.py`` and prints
the result.  Every change is committed with a control-plane version bump, so
a running gateway enforces it within one poll interval.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import click
from sqlalchemy.orm import Session

from clearance.cli import config_option, open_config
from clearance.config import Config
from clearance.policy import approvals as approvals_mod
from clearance.policy import directives as directives_mod
from clearance.policy import grants as grants_mod
from clearance.policy.cedartext import PolicyTextError
from clearance.policy.clock import parse_duration, parse_instant
from clearance.policy.enforce import invariant_guard
from clearance.policy.errors import PolicyAdminError
from clearance.policy.whatif import whatif
from clearance.policy.world import PolicyCompileError
from clearance.store.db import make_engine, make_sessionmaker, migrate


@contextmanager
def store(config: Config) -> Iterator[Session]:
    """A session on the config's store, committed on success; errors become clear CLI messages.

    The changes the session noted are then recorded in the audit log under the local operator's name.
    """
    from clearance.audit import changes
    from clearance.identity.admins import local_actor

    engine = make_engine(config.db_url)
    try:
        migrate(engine)
        with make_sessionmaker(engine).begin() as session:
            yield session
        # Committed: record what changed, as the local operator.
        try:
            changes.write_sync(config, engine, changes.take(session), local_actor().label)
        except Exception as e:
            raise click.ClickException(f"the change was made but could not be recorded in the audit log: {e}") from None
    except PolicyAdminError as e:
        raise click.ClickException(str(e)) from None
    except PolicyTextError as e:
        raise click.ClickException("\n".join([f"{e.source or 'policy'} rejected:"] + [f"  {p}" for p in e.problems])) from None
    except PolicyCompileError as e:
        raise click.ClickException(f"the policy does not compile: {e}") from None
    finally:
        engine.dispose()


override_option = click.option(
    "--override-invariant", "overrides", multiple=True, metavar="ID",
    help="Apply the change even though it breaks this policy invariant (repeatable; needs --reason; recorded).")


@contextmanager
def guarded(config: Config, change: str, overrides=(), reason: str = "", by: str = "") -> Iterator[Session]:
    """``store`` with the change checked against the config's policy invariants before it commits."""
    with store(config) as s:
        with invariant_guard(s, config, change, overrides, reason, by) as outcome:
            yield s
    for inv in outcome.overridden:
        click.echo(f"overrode invariant {inv} (recorded with the reason given)", err=True)


def _instant(_ctx, param, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError as e:
        raise click.BadParameter(str(e), param=param) from None


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise click.ClickException(f"cannot read {path}: {e}") from None


def _known_models(config: Config) -> list[str]:
    return [m.name for m in config.models]


def _emit(rows: list[dict], as_json: bool, line) -> None:
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        click.echo("(none)")
    else:
        for r in rows:
            click.echo(line(r))


# -- directive ------------------------------------------------------------------


@click.group("directive")
def directive() -> None:
    """Apply, revoke, list and test directives (Cedar policies with a time window)."""


@directive.command("apply")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--id", "id_", required=True, help="Directive id, e.g. EO-2025-01 (never reused).")
@click.option("--title", required=True, help="Public title, shown to callers who are denied.")
@click.option("--authority", default="", help="Issuing authority.")
@click.option("--reference", default="", help="Reference of the source document.")
@click.option("--effective-at", callback=_instant, help="ISO 8601 instant it comes into force (default: now).")
@click.option("--expires-at", callback=_instant, help="ISO 8601 instant it lapses (default: never).")
@override_option
@click.option("--reason", default="", help="Why an invariant is overridden (with --override-invariant).")
@config_option
def directive_apply(file, id_, title, authority, reference, effective_at, expires_at, overrides, reason,
                    config_path) -> None:
    """Validate FILE and apply it as a directive (refused if it breaks a policy invariant)."""
    config = open_config(config_path)
    text = _read(file)
    with guarded(config, f"directive apply {id_}", overrides, reason) as s:
        v = directives_mod.apply_directive(s, text, id=id_, title=title, authority=authority, reference=reference,
                                           effective_at=effective_at, expires_at=expires_at)
    click.echo(f"applied directive {v.id} ({v.status}, effective {v.to_json()['effective_at']}"
               + (f", expires {v.to_json()['expires_at']}" if v.expires_at else "") + ")")


@directive.command("revoke")
@click.argument("directive_id")
@click.option("--reason", default="", help="Why it is revoked (kept in the record).")
@override_option
@config_option
def directive_revoke(directive_id, reason, overrides, config_path) -> None:
    """Revoke a directive; its record is kept (refused if that breaks a policy invariant)."""
    with guarded(open_config(config_path), f"directive revoke {directive_id}", overrides, reason) as s:
        v = directives_mod.revoke_directive(s, directive_id, reason)
    click.echo(f"revoked directive {v.id}")


@directive.command("list")
@click.option("--active", is_flag=True, help="Only directives pending or in force.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def directive_list(active, as_json, config_path) -> None:
    """List directives, oldest first."""
    with store(open_config(config_path)) as s:
        rows = [v.to_json() for v in directives_mod.list_directives(s, include_inactive=not active)]
    _emit(rows, as_json, lambda r: f"{r['id']:<20} {r['status']:<9} {r['effective_at']} -> {r['expires_at'] or '-'}  "
                                  f"{r['title']}" + (f"  [{r['authority']}]" if r["authority"] else ""))


@directive.command("whatif")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--since", default=None, help="Window of recorded decisions to replay, e.g. 24h or 7d.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def directive_whatif(file, since, as_json, config_path) -> None:
    """Show who would lose or gain access if FILE were applied now (--since: replay the audit log)."""
    window = None
    if since is not None:
        try:
            window = parse_duration(since)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--since") from None
    config = open_config(config_path)
    text = _read(file)
    with store(config) as s:
        report = whatif(s, config, text, since=window)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
        return
    click.echo(f"{report.note}: {report.pairs} (user, model) pairs, {len(report.changes)} would change")
    summary = report.summary()
    for view in ("by_org", "by_model", "by_user"):
        for name, n in sorted(summary[view].items()):
            reqs = f" ({n['requests_lose']} / {n['requests_gain']} recorded requests)" if report.source == "audit" else ""
            click.echo(f"  {view[3:]} {name}: {n['lose']} lose, {n['gain']} gain{reqs}")
    for c in report.changes:
        extra = (f"; fallback: {', '.join(c.fallback) or 'none'}"
                 + (f" via {c.fallback_backend}" if c.fallback_backend else "")) if c.change == "lose" else ""
        reqs = f", {c.requests} recorded requests" if report.source == "audit" else ""
        click.echo(f"  {c.change:<4} {c.org}/{c.user} {c.model} (route {' > '.join(c.route)}; "
                   f"by {', '.join(c.reasons)}{extra}{reqs})")


# -- approval -------------------------------------------------------------------


@click.group("approval")
def approval() -> None:
    """Customer access requests for approval-required models."""


def _approval_line(r: dict) -> str:
    use = f" for {r['use_case']}" if r.get("use_case") else ""
    return (f"{r['id']}  {r['status']:<9} {r['org']} -> {r['model']}{use}  requested {r['requested_at']}"
            + (f"  ({r['decision_reason'] or r['revoked_reason']})" if r["status"] != "requested" else ""))


@approval.command("request")
@click.option("--org", required=True)
@click.option("--model", required=True)
@click.option("--by", default="", help="Who asks (user id or name).")
@click.option("--reason", default="", help="What the access is for.")
@click.option("--use-case", default="", help="Use case policies can read, e.g. 'security-testing' (high-risk "
              "dual-use cyber help on a cyber-capable model).")
@config_option
def approval_request(org, model, by, reason, use_case, config_path) -> None:
    """Record a request for ORG to use MODEL."""
    config = open_config(config_path)
    with store(config) as s:
        v = approvals_mod.request_approval(s, org, model, requested_by=by, reason=reason,
                                           known_models=_known_models(config), use_case=use_case)
    click.echo(f"requested {v.id}: {org} -> {model}" + (f" for {v.use_case}" if v.use_case else ""))


def _decision_command(name: str, fn, reason_required: bool, help: str):
    @approval.command(name, help=help)
    @click.argument("approval_id")
    @click.option("--by", default="", help="Operator making the decision.")
    @click.option("--reason", default="", required=reason_required, help="Reason (kept in the record).")
    @override_option
    @config_option
    def cmd(approval_id, by, reason, overrides, config_path) -> None:
        with guarded(open_config(config_path), f"approval {name} {approval_id}", overrides, reason, by) as s:
            v = fn(s, approval_id, by=by, reason=reason)
        click.echo(f"{v.id} {v.status}: {v.org} -> {v.model}")

    return cmd


_decision_command("approve", approvals_mod.approve_request, False, "Approve an access request (links the template).")
_decision_command("deny", approvals_mod.deny_request, True, "Deny an access request, with a reason.")
_decision_command("revoke", approvals_mod.revoke_approval, True, "Revoke an approved access request, with a reason.")


@approval.command("list")
@click.option("--org", default=None)
@click.option("--status", type=click.Choice(approvals_mod.STATUSES), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def approval_list(org, status, as_json, config_path) -> None:
    """List access requests, oldest first."""
    with store(open_config(config_path)) as s:
        rows = [v.to_json() for v in approvals_mod.list_approvals(s, org=org, status=status)]
    _emit(rows, as_json, _approval_line)


# -- grant ----------------------------------------------------------------------


@click.group("grant")
def grant() -> None:
    """Time-boxed access for an org to a model (e.g. a pre-release evaluation window)."""


@grant.command("add")
@click.option("--org", required=True)
@click.option("--model", required=True)
@click.option("--from", "starts_at", required=True, callback=_instant, help="ISO 8601 start (inclusive).")
@click.option("--until", "ends_at", required=True, callback=_instant, help="ISO 8601 end (exclusive).")
@click.option("--reason", default="")
@click.option("--by", default="")
@override_option
@config_option
def grant_add(org, model, starts_at, ends_at, reason, by, overrides, config_path) -> None:
    """Give ORG access to MODEL between two instants (refused if it breaks a policy invariant)."""
    config = open_config(config_path)
    with guarded(config, f"grant add {org} {model}", overrides, reason, by) as s:
        v = grants_mod.add_grant(s, org, model, starts_at, ends_at, reason=reason, by=by,
                                 known_models=_known_models(config))
    click.echo(f"granted {v.id}: {org} -> {model} from {v.to_json()['starts_at']} until {v.to_json()['ends_at']}")


@grant.command("list")
@click.option("--org", default=None)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def grant_list(org, as_json, config_path) -> None:
    """List grants."""
    with store(open_config(config_path)) as s:
        rows = [v.to_json() for v in grants_mod.list_grants(s, org=org)]
    _emit(rows, as_json, lambda r: f"{r['id']}  {r['status']:<7} {r['org']} -> {r['model']}  "
                                  f"{r['starts_at']} .. {r['ends_at']}  {r['reason']}")


@grant.command("revoke")
@click.argument("grant_id")
@click.option("--reason", default="")
@override_option
@config_option
def grant_revoke(grant_id, reason, overrides, config_path) -> None:
    """Revoke a grant before its window ends (refused if that breaks a policy invariant)."""
    with guarded(open_config(config_path), f"grant revoke {grant_id}", overrides, reason) as s:
        v = grants_mod.revoke_grant(s, grant_id, reason)
    click.echo(f"revoked grant {v.id}")

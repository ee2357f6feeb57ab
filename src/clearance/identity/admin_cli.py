"""``clearance admin``: named administrators (add, list, rotate, disable, enable), on the store directly."""

from __future__ import annotations

import json

import click

from clearance.cli import config_option, open_config
from clearance.identity.cli import run_change
from clearance.identity.roles import ROLES


@click.group()
def admin() -> None:
    """Named administrators with roles (operator, compliance, org-admin, auditor) and their tokens."""


def _print_created(c, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"name": c.name, "role": c.role, "org": c.org, "token": c.token,
                               "expires_at": c.expires_at.isoformat() if c.expires_at else None}))
    else:
        click.echo(c.token)
        click.echo(f"token for {c.name} ({c.role}) expires {c.expires_at.isoformat() if c.expires_at else 'never'}; "
                   "store it now, it will not be shown again", err=True)


@admin.command("add")
@config_option
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--org", "org_slug", default=None, help="The org of an org-admin.")
@click.option("--expires-in-days", type=click.IntRange(1, 366), default=90, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the token as JSON.")
def admin_add(config_path: str, name: str, role: str, org_slug: str | None, expires_in_days: int,
              as_json: bool) -> None:
    """Add an administrator; its token is printed once."""
    from datetime import timedelta

    from clearance.identity import admins

    c = run_change(open_config(config_path), lambda s: admins.add_admin(
        s, name, role, org=org_slug, created_by=admins.local_actor().name,
        lifetime=timedelta(days=expires_in_days)))
    _print_created(c, as_json)


@admin.command("rotate")
@config_option
@click.argument("name")
@click.option("--expires-in-days", type=click.IntRange(1, 366), default=90, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def admin_rotate(config_path: str, name: str, expires_in_days: int, as_json: bool) -> None:
    """Give an administrator a new token (the old one stops working)."""
    from datetime import timedelta

    from clearance.identity import admins

    _print_created(run_change(open_config(config_path), lambda s: admins.rotate_token(
        s, name, timedelta(days=expires_in_days))), as_json)


def _switch(disabled: bool):
    verb = "disable" if disabled else "enable"

    @admin.command(verb, help=f"{verb.capitalize()} an administrator.")
    @config_option
    @click.argument("name")
    def cmd(config_path: str, name: str) -> None:
        from clearance.identity import admins

        run_change(open_config(config_path), lambda s: admins.set_admin_disabled(s, name, disabled))
        click.echo(f"admin {name} {verb}d")

    return cmd


admin_disable = _switch(True)
admin_enable = _switch(False)


@admin.command("list")
@config_option
def admin_list(config_path: str) -> None:
    """List administrators (never their tokens)."""
    from clearance.identity import admins

    for a in run_change(open_config(config_path), admins.list_admins):
        state = "disabled" if a.disabled_at else "active"
        click.echo(f"{a.name}\t{a.role}\t{a.org_slug or '-'}\t{state}\t"
                   f"expires={a.expires_at.isoformat() if a.expires_at else 'never'}")

"""``clearance org``, ``user`` and ``key``: the identity commands, working on the store directly.

The CLI acts as the local operator named after the OS user
(``admins.local_actor``): whoever can write the database can change
anything, so roles are not checked here, but every change is recorded in
the audit log under that name.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import click

from clearance.cli import config_option, open_config, open_store
from clearance.config import Config

_INSTANT = click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"])


def run_change(config: Config, fn: Callable, errors: tuple[type[Exception], ...] = ()):
    """Run ``fn(session)`` in one transaction as the local operator, then record the changes it noted.

    Domain errors (identity's, and ``errors``) become clean CLI errors; nothing is recorded for a
    change that was rolled back.
    """
    from clearance.audit import changes
    from clearance.identity.admins import local_actor
    from clearance.identity.service import IdentityError

    sessions = open_store(config)
    with sessions() as session:
        try:
            result = fn(session)
            session.commit()
        except (IdentityError, *errors) as e:
            session.rollback()
            changes.discard(session)
            raise click.ClickException(str(e)) from None
        noted = changes.take(session)
    try:
        changes.write_sync(config, sessions.kw["bind"], noted, local_actor().label)
    except Exception as e:
        raise click.ClickException(f"the change was made but could not be recorded in the audit log: {e}") from None
    return result


def _echo_json_or(as_json: bool, state: dict, line: str) -> None:
    click.echo(json.dumps(state) if as_json else line)


# -- org ------------------------------------------------------------------------


@click.group()
def org() -> None:
    """Organisations and org groups: add, update, disable, enable, join, leave, list."""


@org.command("add")
@config_option
@click.argument("slug")
@click.option("--name", default="", help="Display name.")
@click.option("--group", "groups", multiple=True, help="Org group to join (repeatable), e.g. critical-infrastructure.")
def org_add(config_path: str, slug: str, name: str, groups: tuple[str, ...]) -> None:
    """Add an organisation."""
    from clearance.identity import service

    run_change(open_config(config_path), lambda s: service.add_org(s, slug, name, groups))
    click.echo(f"org {slug} added" + (f" (groups: {', '.join(groups)})" if groups else ""))


@org.command("update")
@config_option
@click.argument("slug")
@click.option("--name", default=None, help="New display name.")
def org_update(config_path: str, slug: str, name: str | None) -> None:
    """Change an organisation's display name."""
    from clearance.identity import service

    run_change(open_config(config_path), lambda s: service.update_org(s, slug, name=name))
    click.echo(f"org {slug} updated")


def _org_switch(disabled: bool):
    verb = "disable" if disabled else "enable"

    @org.command(verb)
    @config_option
    @click.argument("slug")
    def cmd(config_path: str, slug: str) -> None:
        from clearance.identity import service

        run_change(open_config(config_path), lambda s: service.set_org_disabled(s, slug, disabled))
        click.echo(f"org {slug} {verb}d")

    cmd.__doc__ = ("Disable an organisation: every request of its users is refused (403) within a second."
                   if disabled else "Enable a disabled organisation again.")
    return cmd


org_disable = _org_switch(True)
org_enable = _org_switch(False)


@org.command("scim-token")
@config_option
@click.argument("slug")
@click.option("--trust-verified", is_flag=True, help="Let the org's SCIM client set users' `verified`.")
def org_scim_token(config_path: str, slug: str, trust_verified: bool) -> None:
    """Issue the org's SCIM provisioning token (printed once; the previous one stops working)."""
    from clearance.scim.tokens import issue_token

    click.echo(run_change(open_config(config_path), lambda s: issue_token(s, slug, trust_verified)))
    click.echo(f"SCIM token for {slug}: base URL /scim/v2; store it now, it will not be shown again", err=True)


@org.command("join")
@config_option
@click.argument("slug")
@click.argument("group")
def org_join(config_path: str, slug: str, group: str) -> None:
    """Put an organisation into an org group."""
    from clearance.identity import service

    run_change(open_config(config_path), lambda s: service.add_org_to_group(s, slug, group))
    click.echo(f"org {slug} joined group {group}")


@org.command("leave")
@config_option
@click.argument("slug")
@click.argument("group")
def org_leave(config_path: str, slug: str, group: str) -> None:
    """Take an organisation out of an org group."""
    from clearance.identity import service

    run_change(open_config(config_path), lambda s: service.remove_org_from_group(s, slug, group))
    click.echo(f"org {slug} left group {group}")


@org.command("list")
@config_option
def org_list(config_path: str) -> None:
    """List organisations and their groups."""
    from clearance.identity import service

    rows = run_change(open_config(config_path), service.list_orgs)
    for o, groups in rows:
        click.echo(f"{o.slug}\t{o.name}\t{','.join(groups)}" + ("\tdisabled" if o.disabled_at else ""))


# -- user -----------------------------------------------------------------------


@click.group()
def user() -> None:
    """Users and their attributes: add, update, disable, enable, delete, list."""


@user.command("add")
@config_option
@click.argument("user_id")
@click.option("--org", "org_slug", required=True, help="The user's organisation.")
@click.option("--nationality", default="", help="ISO 3166 alpha-2 country code, e.g. US.")
@click.option("--us-person/--non-us-person", default=False, help="Whether the user is a US person.")
@click.option("--not-us-person-confirmed", is_flag=True,
              help="Confirm that a US national is not a US person (otherwise refused).")
@click.option("--verified/--unverified", default=False, help="Whether the user's identity has been checked.")
@click.option("--verified-until", type=_INSTANT, default=None, help="When the verification lapses (UTC).")
@click.option("--email", default="")
def user_add(config_path: str, user_id: str, org_slug: str, nationality: str, us_person: bool,
             not_us_person_confirmed: bool, verified: bool, verified_until, email: str) -> None:
    """Add a user to an organisation."""
    from clearance.identity import service

    run_change(open_config(config_path), lambda s: service.add_user(
        s, user_id, org_slug, nationality=nationality, us_person=us_person, verified=verified, email=email,
        verified_until=verified_until, not_us_person_confirmed=not_us_person_confirmed))
    click.echo(f"user {user_id} added to {org_slug}")


@user.command("update")
@config_option
@click.argument("user_id")
@click.option("--nationality", default=None, help="ISO 3166 alpha-2 country code, e.g. US.")
@click.option("--us-person/--no-us-person", default=None, help="Whether the user is a US person.")
@click.option("--not-us-person-confirmed", is_flag=True,
              help="Confirm that a US national is not a US person (otherwise refused).")
@click.option("--verified/--no-verified", default=None, help="Whether the user's identity has been checked.")
@click.option("--verified-until", default=None,
              help="When the verification lapses (ISO 8601, UTC unless an offset is given), or 'never'.")
@click.option("--email", default=None)
@click.option("--json", "as_json", is_flag=True, help="Print the user's new state as JSON.")
def user_update(config_path: str, user_id: str, nationality: str | None, us_person: bool | None,
                not_us_person_confirmed: bool, verified: bool | None, verified_until: str | None,
                email: str | None, as_json: bool) -> None:
    """Change a user's nationality, US-person status, verification or email."""
    from datetime import datetime

    from clearance.identity import service

    until = service.UNSET
    if verified_until is not None:
        try:
            until = None if verified_until == "never" else datetime.fromisoformat(verified_until)
        except ValueError:
            raise click.BadParameter("an ISO 8601 instant or 'never'", param_hint="--verified-until") from None
    u = run_change(open_config(config_path), lambda s: service.user_state(service.update_user(
        s, user_id, nationality=nationality, us_person=us_person, verified=verified, verified_until=until,
        email=email, not_us_person_confirmed=not_us_person_confirmed)))
    _echo_json_or(as_json, u, f"user {user_id} updated")


def _user_change(verb: str, fn_name: str, doc: str, **kw):
    @user.command(verb, help=doc)
    @config_option
    @click.argument("user_id")
    def cmd(config_path: str, user_id: str) -> None:
        from clearance.identity import service

        fn = getattr(service, fn_name)
        run_change(open_config(config_path), lambda s: fn(s, user_id, **kw))
        click.echo(f"user {user_id} {verb}d")

    return cmd


user_disable = _user_change("disable", "set_user_disabled", "Disable a user: its keys and tokens are refused "
                            "(403) within a second.", disabled=True)
user_enable = _user_change("enable", "set_user_disabled", "Enable a disabled user again.", disabled=False)
user_delete = _user_change("delete", "delete_user", "Delete a user: a tombstone (the id is never reused), "
                           "and every key it had is revoked.")


@user.command("list")
@config_option
@click.option("--org", "org_slug", default=None)
@click.option("--all", "include_deleted", is_flag=True, help="Include deleted users.")
def user_list(config_path: str, org_slug: str | None, include_deleted: bool) -> None:
    """List users."""
    from clearance.identity import service

    users = run_change(open_config(config_path), lambda s: service.list_users(s, org_slug, include_deleted))
    for u in users:
        state = "deleted" if u.deleted_at else "disabled" if u.disabled_at else "active"
        until = f"\tverified_until={u.verified_until.isoformat()}" if u.verified_until else ""
        click.echo(f"{u.id}\t{u.org_slug}\tnationality={u.nationality or '-'}\tus_person={u.us_person}\t"
                   f"verified={u.verified}\t{state}{until}")


# -- key ------------------------------------------------------------------------


@click.group()
def key() -> None:
    """API keys: create (shown once), revoke, list."""


@key.command("create")
@config_option
@click.option("--user", "user_id", required=True)
@click.option("--name", default="")
@click.option("--use-case", default="", help="Declared use case, visible to policy as context.use_case.")
@click.option("--expires-at", type=_INSTANT, default=None, help="Expiry instant (UTC unless an offset is given).")
@click.option("--json", "as_json", is_flag=True, help="Print the key as JSON.")
def key_create(config_path: str, user_id: str, name: str, use_case: str, expires_at, as_json: bool) -> None:
    """Create an API key. The key is printed once and never stored."""
    from clearance.identity import service

    created = run_change(open_config(config_path), lambda s: service.create_key(
        s, user_id, name=name, use_case=use_case, expires_at=expires_at))
    if as_json:
        click.echo(json.dumps({"key_id": created.key_id, "key": created.key, "user": created.user_id,
                               "expires_at": created.expires_at.isoformat() if created.expires_at else None}))
    else:
        click.echo(created.key)
        click.echo(f"key id {created.key_id} for {created.user_id}; store it now, it will not be shown again",
                   err=True)


@key.command("revoke")
@config_option
@click.argument("key_id")
def key_revoke(config_path: str, key_id: str) -> None:
    """Revoke a key by its id."""
    from clearance.identity import service

    run_change(open_config(config_path), lambda s: service.revoke_key(s, key_id))
    click.echo(f"key {key_id} revoked")


@key.command("list")
@config_option
@click.option("--user", "user_id", default=None)
def key_list(config_path: str, user_id: str | None) -> None:
    """List keys (ids and state, never the keys themselves)."""
    from clearance.identity import service

    for k in run_change(open_config(config_path), lambda s: service.list_keys(s, user_id)):
        state = "revoked" if k.revoked_at else "active"
        click.echo(f"{k.id}\t{k.user_id}\t{state}\tuse_case={k.use_case or '-'}\t"
                   f"expires={k.expires_at.isoformat() if k.expires_at else 'never'}")

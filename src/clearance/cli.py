"""Command-line entry points: ``clearance serve``, ``demo``, ``org``, ``user``, ``key``, ...

Only argument parsing and printing live here; each command calls into the
package that does the work.  Command groups of other areas (``audit``,
``guard``, ``directive``, ``approval``, ``grant``, ``policy``, ``assess``) are defined next
to their code and named in ``LAZY_COMMANDS``: a group's module is imported only
when that group is run (or ``--help`` lists them all), so a command starts
without loading every area's dependencies.
"""

from __future__ import annotations

import importlib

import click

from clearance.config import Config, ConfigError, load_config

# Command groups defined next to their code: name -> "module:attribute".
LAZY_COMMANDS = {
    "approval": "clearance.policy.cli:approval",
    "assess": "clearance.assess.cli:assess",
    "audit": "clearance.audit.cli:audit",
    "directive": "clearance.policy.cli:directive",
    "grant": "clearance.policy.cli:grant",
    "guard": "clearance.guard.cli:guard",
    "incident": "clearance.policy.cli_incident:incident",
    "limit": "clearance.limits.cli:limit",
    "policy": "clearance.policy.cli_check:policy",
    "usage": "clearance.limits.cli:usage",
}


class LazyGroup(click.Group):
    """A click group that imports the command groups of ``LAZY_COMMANDS`` when they are asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY_COMMANDS and name not in self.commands:
            module, _, attr = LAZY_COMMANDS[name].partition(":")
            self.add_command(getattr(importlib.import_module(module), attr), name)
        return super().get_command(ctx, name)

config_option = click.option(
    "--config", "config_path", required=True, type=click.Path(dir_okay=False),
    envvar="CLEARANCE_CONFIG", help="Path to clearance.yaml (or $CLEARANCE_CONFIG).",
)


def open_config(path: str) -> Config:
    """Load a config or exit with a clear message."""
    try:
        return load_config(path)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None


@click.group(cls=LazyGroup)
@click.version_option(package_name="clearance")
def main() -> None:
    """Clearance: decide who may use which AI model, screen prompts, fall back, and prove it."""


def open_store(config: Config):
    """A sessionmaker on the config's store, migrated to the newest schema."""
    from clearance.store.db import make_engine, make_sessionmaker, migrate

    config.state_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(config.db_url)
    try:
        migrate(engine)
    except Exception as e:
        raise click.ClickException(f"cannot open the store: {type(e).__name__}: {e}") from None
    return make_sessionmaker(engine)


def _in_transaction(config: Config, fn):
    """Run ``fn(session)`` in one transaction, turning domain errors into clean CLI errors."""
    from clearance.identity.service import IdentityError

    sessions = open_store(config)
    with sessions() as session:
        try:
            result = fn(session)
            session.commit()
            return result
        except IdentityError as e:
            session.rollback()
            raise click.ClickException(str(e)) from None


@main.command()
@config_option
@click.option("--host", default=None, help="Listen address (default: server.host in the config).")
@click.option("--port", type=int, default=None, help="Listen port (default: server.port in the config).")
@click.option("--workers", type=int, default=None, help="Worker processes (default: server.workers).")
def serve(config_path: str, host: str | None, port: int | None, workers: int | None) -> None:
    """Run the gateway."""
    import os

    import uvicorn

    from clearance.logging import setup_logging

    config = open_config(config_path)
    setup_logging(config.server.log_format, config.server.log_level)
    from clearance.audit.setup import AuditSetupError, check_audit_setup

    try:
        check_audit_setup(config)  # fail closed: no start without the audit keys the config names
    except AuditSetupError as e:
        raise click.ClickException(str(e)) from None
    open_store(config)  # migrate once before workers start
    os.environ["CLEARANCE_CONFIG"] = str(config.path)
    n = workers or config.server.workers
    if n > 1:  # every worker's /metrics answers for all workers
        import shutil

        metrics_dir = config.state_dir / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    uvicorn.run("clearance.app:app_from_env", factory=True, host=host or config.server.host,
                port=port or config.server.port, workers=n, loop="uvloop",
                http="clearance.httpserver:HttpProtocol", access_log=False, log_level="warning", lifespan="on")


@main.group()
def org() -> None:
    """Organisations and org groups."""


@org.command("add")
@config_option
@click.argument("slug")
@click.option("--name", default="", help="Display name.")
@click.option("--group", "groups", multiple=True, help="Org group to join (repeatable), e.g. critical-infrastructure.")
def org_add(config_path: str, slug: str, name: str, groups: tuple[str, ...]) -> None:
    """Add an organisation."""
    from clearance.identity import service

    _in_transaction(open_config(config_path), lambda s: service.add_org(s, slug, name, groups))
    click.echo(f"org {slug} added" + (f" (groups: {', '.join(groups)})" if groups else ""))


@org.command("join")
@config_option
@click.argument("slug")
@click.argument("group")
def org_join(config_path: str, slug: str, group: str) -> None:
    """Put an organisation into an org group."""
    from clearance.identity import service

    _in_transaction(open_config(config_path), lambda s: service.add_org_to_group(s, slug, group))
    click.echo(f"org {slug} joined group {group}")


@org.command("leave")
@config_option
@click.argument("slug")
@click.argument("group")
def org_leave(config_path: str, slug: str, group: str) -> None:
    """Take an organisation out of an org group."""
    from clearance.identity import service

    _in_transaction(open_config(config_path), lambda s: service.remove_org_from_group(s, slug, group))
    click.echo(f"org {slug} left group {group}")


@org.command("list")
@config_option
def org_list(config_path: str) -> None:
    """List organisations and their groups."""
    from clearance.identity import service

    rows = _in_transaction(open_config(config_path), service.list_orgs)
    for o, groups in rows:
        click.echo(f"{o.slug}\t{o.name}\t{','.join(groups)}")


@main.group()
def user() -> None:
    """Users and their attributes."""


@user.command("add")
@config_option
@click.argument("user_id")
@click.option("--org", "org_slug", required=True, help="The user's organisation.")
@click.option("--nationality", default="", help="ISO 3166 alpha-2 country code, e.g. US.")
@click.option("--us-person/--non-us-person", default=False, help="Whether the user is a US person.")
@click.option("--verified/--unverified", default=False, help="Whether the user's identity has been checked.")
@click.option("--email", default="")
def user_add(config_path: str, user_id: str, org_slug: str, nationality: str, us_person: bool, verified: bool,
             email: str) -> None:
    """Add a user to an organisation."""
    from clearance.identity import service

    _in_transaction(open_config(config_path), lambda s: service.add_user(
        s, user_id, org_slug, nationality=nationality, us_person=us_person, verified=verified, email=email))
    click.echo(f"user {user_id} added to {org_slug}")


@user.command("list")
@config_option
@click.option("--org", "org_slug", default=None)
def user_list(config_path: str, org_slug: str | None) -> None:
    """List users."""
    from clearance.identity import service

    for u in _in_transaction(open_config(config_path), lambda s: service.list_users(s, org_slug)):
        click.echo(f"{u.id}\t{u.org_slug}\tnationality={u.nationality or '-'}\tus_person={u.us_person}\t"
                   f"verified={u.verified}")


@main.group()
def key() -> None:
    """API keys: create (shown once), revoke, list."""


@key.command("create")
@config_option
@click.option("--user", "user_id", required=True)
@click.option("--name", default="")
@click.option("--use-case", default="", help="Declared use case, visible to policy as context.use_case.")
@click.option("--expires-at", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"]),
              default=None, help="Expiry instant (UTC unless an offset is given).")
@click.option("--json", "as_json", is_flag=True, help="Print the key as JSON.")
def key_create(config_path: str, user_id: str, name: str, use_case: str, expires_at, as_json: bool) -> None:
    """Create an API key. The key is printed once and never stored."""
    import json

    from clearance.identity import service

    created = _in_transaction(open_config(config_path), lambda s: service.create_key(
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

    _in_transaction(open_config(config_path), lambda s: service.revoke_key(s, key_id))
    click.echo(f"key {key_id} revoked")


@key.command("list")
@config_option
@click.option("--user", "user_id", default=None)
def key_list(config_path: str, user_id: str | None) -> None:
    """List keys (ids and state, never the keys themselves)."""
    from clearance.identity import service

    for k in _in_transaction(open_config(config_path), lambda s: service.list_keys(s, user_id)):
        state = "revoked" if k.revoked_at else "active"
        click.echo(f"{k.id}\t{k.user_id}\t{state}\tuse_case={k.use_case or '-'}\t"
                   f"expires={k.expires_at.isoformat() if k.expires_at else 'never'}")


@main.command()
@click.option("--port", type=int, default=8080, show_default=True, help="Port of the gateway.")
@click.option("--state-dir", type=click.Path(file_okay=False), default="clearance-demo", show_default=True,
              help="Where the demo's config, store, keys and audit log live.")
def demo(port: int, state_dir: str) -> None:
    """Run the demo: simulated upstreams, the demo world, and the gateway."""
    from pathlib import Path

    from clearance.demo.run import run_demo

    run_demo(port, Path(state_dir))

"""Command-line entry points: ``clearance serve``, ``demo``, and the groups of each area.

Only argument parsing and printing live here; each command calls into the
package that does the work.  Command groups of the areas (``org``, ``user``,
``key``, ``admin``, ``audit``, ``guard``, ``directive``, ``approval``,
``grant``, ``policy``, ``incident``, ``limit``, ``usage``, ``witness``, ``assess``) are defined next
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
    "admin": "clearance.identity.admin_cli:admin",
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
    "key": "clearance.identity.cli:key",
    "org": "clearance.identity.cli:org",
    "user": "clearance.identity.cli:user",
    "witness": "clearance.witness.cli:witness",
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
    from clearance.guard.trusted import TrustedPrompts

    try:  # fail at once, with a message, on a trusted-prompts file that cannot be read
        TrustedPrompts.load(config.guard.trusted_system_prompts, config.path.parent if config.path else None)
    except ValueError as e:
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


@main.command()
@click.option("--port", type=int, default=8080, show_default=True, help="Port of the gateway.")
@click.option("--state-dir", type=click.Path(file_okay=False), default="clearance-demo", show_default=True,
              help="Where the demo's config, store, keys and audit log live.")
def demo(port: int, state_dir: str) -> None:
    """Run the demo: simulated upstreams, the demo world, and the gateway."""
    from pathlib import Path

    from clearance.demo.run import run_demo

    run_demo(port, Path(state_dir))

"""Command-line entry points: ``clearance serve``, ``demo``, ``org``, ``user``, ``key``, ...

Only argument parsing and printing live here; each command calls into the
package that does the work.  Command groups of other areas (``audit``,
``guard``, ``directive``, ``assess``) are defined next to their code and added
to the top-level group at the bottom of this file.
"""

from __future__ import annotations

import click

from clearance.config import Config, ConfigError, load_config

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


@click.group()
@click.version_option(package_name="clearance")
def main() -> None:
    """Clearance: decide who may use which AI model, screen prompts, fall back, and prove it."""

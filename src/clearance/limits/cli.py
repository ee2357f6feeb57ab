"""Command-line groups ``limit`` (set, list, remove) and ``usage`` (report)."""

from __future__ import annotations

import csv
import io
import json

import click

from clearance.cli import config_option, open_config, open_store
from clearance.limits import service
from clearance.policy.clock import parse_instant


@click.group()
def limit() -> None:
    """Usage limits: requests and tokens per minute, tokens per day, spend per month."""


@limit.command("set")
@config_option
@click.option("--key", "key_id", help="Limit one API key (its public id).")
@click.option("--user", help="Limit one user.")
@click.option("--org", help="Limit one organisation (all its users together).")
@click.option("--group", help="Limit one org group (all its orgs together).")
@click.option("--everyone", is_flag=True, help="Limit every caller together.")
@click.option("--model", default="", help="Only on this model (default: on every model, together).")
@click.option("--requests-per-minute", type=click.IntRange(min=0))
@click.option("--tokens-per-minute", type=click.IntRange(min=0))
@click.option("--tokens-per-day", type=click.IntRange(min=0))
@click.option("--spend-per-month", type=click.FloatRange(min=0), help="US dollars, from limits.prices.")
@click.option("--on-store-error", type=click.Choice(["deny", "allow"]), default="deny",
              help="What to do when the counters (Redis) cannot answer.")
@click.option("--json", "as_json", is_flag=True)
def limit_set(config_path, key_id, user, org, group, everyone, model, requests_per_minute, tokens_per_minute,
              tokens_per_day, spend_per_month, on_store_error, as_json) -> None:
    """Set (or replace) the limit of a key, user, org, org group or everyone."""
    config = open_config(config_path)
    chosen = [(s, v) for s, v in (("key", key_id), ("user", user), ("org", org), ("group", group)) if v]
    if everyone:
        chosen.append(("all", ""))
    if len(chosen) != 1:
        raise click.UsageError("name exactly one of --key, --user, --org, --group, --everyone")
    if model and model not in {m.name for m in config.models}:
        raise click.UsageError(f"no model {model!r} in the config")
    if spend_per_month is not None and model and model not in config.limits.prices:
        raise click.UsageError(f"--spend-per-month needs a price for {model!r} in limits.prices")
    scope, subject = chosen[0]
    view = _run(config, lambda s: service.set_limit(
        s, scope=scope, subject=subject, model=model, by=_operator(), on_store_error=on_store_error,
        requests_per_minute=requests_per_minute, tokens_per_minute=tokens_per_minute,
        tokens_per_day=tokens_per_day, spend_per_month_usd=spend_per_month))
    click.echo(json.dumps(view.to_json()) if as_json else f"limit {view.id} set: {_describe(view)}")


@limit.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True)
def limit_list(config_path, as_json) -> None:
    """List every usage limit."""
    views = _run(open_config(config_path), service.list_limits)
    if as_json:
        click.echo(json.dumps([v.to_json() for v in views]))
        return
    for v in views:
        click.echo(f"{v.id}\t{_describe(v)}")


@limit.command("remove")
@config_option
@click.argument("limit_id")
def limit_remove(config_path, limit_id) -> None:
    """Remove a usage limit."""
    view = _run(open_config(config_path), lambda s: service.remove_limit(s, limit_id))
    click.echo(f"limit {view.id} removed ({_describe(view)})")


@click.group()
def usage() -> None:
    """Usage reports, from the audit log."""


@usage.command("report")
@config_option
@click.option("--by", type=click.Choice(["org", "user", "model", "key"]), default="org")
@click.option("--since", help="Start (ISO 8601 instant, e.g. 2026-12-01T00:00:00Z).")
@click.option("--until", help="End, exclusive (ISO 8601 instant).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
def usage_report(config_path, by, since, until, fmt) -> None:
    """Requests, tokens and spend per org, user, model or key."""
    from clearance.limits.usage import usage_report as report
    from clearance.store.db import make_engine

    config = open_config(config_path)
    open_store(config)
    rows = report(make_engine(config.db_url), by, _instant(since, "--since"), _instant(until, "--until"),
                  config.limits.prices)
    if fmt == "json":
        click.echo(json.dumps(rows))
        return
    cols = [by, "requests", "refused", "prompt_tokens", "completion_tokens", "total_tokens", "spend_usd"]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=cols, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        click.echo(out.getvalue(), nl=False)
        return
    click.echo("\t".join(cols))
    for r in rows:
        click.echo("\t".join(str(r[c]) for c in cols))


def _instant(text: str | None, name: str):
    if not text:
        return None
    try:
        return parse_instant(text)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint=name) from None


def _operator() -> str:
    from clearance.identity.admins import local_actor

    return local_actor().label


def _describe(v: service.LimitView) -> str:
    who = "everyone" if v.scope == "all" else f"{v.scope} {v.subject}"
    amounts = [f"{name.replace('_', ' ')} {getattr(v, name)}" for name in service.AMOUNTS
               if getattr(v, name) is not None]
    return f"{who} on {v.model or 'every model'}: {', '.join(amounts)} (on store error: {v.on_store_error})"


def _run(config, fn):
    from clearance.identity.cli import run_change

    return run_change(config, fn, (service.LimitError,))

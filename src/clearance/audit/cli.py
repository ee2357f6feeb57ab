"""``clearance audit ...``: keys, verification, proofs, checkpoints, export, reports and stored content.

Argument parsing and printing only; the work is done by the modules of
``clearance.audit``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from clearance.audit.checkpoint import NoteError, write_keypair
from clearance.audit.merkle import ProofError
from clearance.cli import config_option, open_config  # clearance.cli imports this module at its end


def _engine(config) -> Engine:
    from clearance.store.db import make_engine, migrate

    try:
        if config.db_url.startswith("sqlite:///"):
            Path(config.db_url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        engine = make_engine(config.db_url)
        migrate(engine)
    except SQLAlchemyError as e:
        raise click.ClickException(f"cannot open the store: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    return engine


def _parse_time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 date or time", param_hint=option) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC)


def _verifier(config, key: str | None):
    from clearance.audit.setup import verifier_from_config

    try:
        return verifier_from_config(config, key)
    except NoteError as e:
        raise click.ClickException(str(e)) from None


@click.group()
def audit() -> None:
    """The tamper-evident audit log: keys, verification, proofs, export, reports."""


@audit.command()
@config_option
@click.option("--name", help="Key name (defaults to audit.origin from the config).")
@click.option("--out", "out", type=click.Path(dir_okay=False), help="Signing key file (defaults to audit.signing_key).")
@click.option("--force", is_flag=True, help="Overwrite an existing signing key.")
def keygen(config_path: str, name: str | None, out: str | None, force: bool) -> None:
    """Generate the Ed25519 checkpoint signing key and its publishable verifier key."""
    config = open_config(config_path)
    name = name or config.audit.origin
    if out:
        private = Path(out).resolve()
    elif config.audit.signing_key:
        private = config.resolve(config.audit.signing_key)
    else:
        private = config.resolve("audit-signing.key")
    public = private.with_name(private.name + ".pub")
    try:
        signer = write_keypair(name, private, public, overwrite=force)
    except NoteError as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:
        raise click.ClickException(f"cannot write the key: {e.strerror or e}") from None
    click.echo(f"signing key (keep secret, mode 0600): {private}")
    click.echo(f"verifier key (publish this):          {public}")
    click.echo(signer.verifier.vkey())
    if not config.audit.signing_key or config.resolve(config.audit.signing_key) != private:
        click.echo(f"set `audit: {{signing_key: {private}}}` in {config_path} to sign checkpoints with it", err=True)


@audit.command()
@config_option
@click.option("--key", help="Verifier key, or a file holding it (defaults to the configured keys).")
@click.option("--checkpoints", "checkpoint_dirs", multiple=True, type=click.Path(file_okay=False),
              help="A mirrored copy of the published checkpoints (audit.checkpoint_dir); the database must "
                   "agree with every one.")
@click.option("--trusted-checkpoint", "trusted_files", multiple=True, type=click.Path(dir_okay=False),
              help="A checkpoint kept outside the database (a file); the database must agree with it.")
@click.option("--witness", "witness_urls", multiple=True,
              help="A witness's URL: the latest checkpoint it cosigned must agree with the database.")
@click.option("--witness-key", "witness_keys", multiple=True,
              help="A witness's verifier key (or a file): its cosignature on what it returns is checked.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify(config_path: str, key: str | None, checkpoint_dirs: tuple[str, ...], trusted_files: tuple[str, ...],
           witness_urls: tuple[str, ...], witness_keys: tuple[str, ...], as_json: bool) -> None:
    """Recompute the whole tree and check every checkpoint; exit 1 naming the first bad entry.

    With --checkpoints or --trusted-checkpoint the log is also held to checkpoints kept
    outside its database, which its operator cannot rewrite.
    """
    from clearance.audit.publish import read_published
    from clearance.audit.verify import verify_log

    config = open_config(config_path)
    verifier = _verifier(config, key)
    trusted: list[tuple[str, str]] = []
    try:
        for folder in checkpoint_dirs:
            found = read_published(Path(folder))
            if not found:
                raise click.ClickException(f"no published checkpoints in {folder}")
            trusted += found
        trusted += [(f, Path(f).read_text(encoding="utf-8")) for f in trusted_files]
    except OSError as e:
        raise click.ClickException(f"cannot read trusted checkpoints: {e}") from None
    if witness_urls:
        from clearance.witness.fetch import witnessed_checkpoints

        try:
            trusted += witnessed_checkpoints(witness_urls, witness_keys, config.audit.origin)
        except (NoteError, OSError, ValueError) as e:
            raise click.ClickException(f"cannot use the witnesses: {e}") from None
    result = verify_log(_engine(config), verifier, config.audit.origin, trusted=trusted)
    if as_json:
        click.echo(json.dumps({
            "ok": result.ok, "size": result.size, "entries_checked": result.entries_checked,
            "checkpoints_checked": result.checkpoints_checked, "signatures_checked": result.signatures_checked,
            "trusted_checked": result.trusted_checked,
            "pruned_size": result.pruned_size, "first_bad_entry": result.first_bad_entry,
            "problems": [p.message for p in result.problems],
        }, indent=2))
    else:
        if verifier is None:
            click.echo("warning: no verifier key configured; checkpoint signatures were not checked", err=True)
        for p in result.problems:
            click.echo(f"FAIL: {p.message}", err=True)
        if result.ok:
            click.echo(
                f"OK: {result.entries_checked} entries, {result.checkpoints_checked} checkpoints, "
                f"{result.signatures_checked} signatures verified (log size {result.size})"
                + (f", consistent with {result.trusted_checked} trusted checkpoints" if trusted else "")
            )
    if not result.ok:
        first = result.first_bad_entry
        raise click.ClickException(
            f"audit log verification failed" + (f": first bad entry {first}" if first is not None else "")
        )


@audit.command()
@config_option
@click.argument("entry_index", type=click.IntRange(min=0))
@click.option("--key", help="Verifier key, or a file holding it.")
def prove(config_path: str, entry_index: int, key: str | None) -> None:
    """Print the inclusion proof of ENTRY_INDEX against the newest checkpoint, as JSON."""
    from clearance.audit.export import ExportError, prove as make_proof

    config = open_config(config_path)
    try:
        click.echo(json.dumps(make_proof(_engine(config), entry_index, _verifier(config, key)), indent=2))
    except (ExportError, NoteError, ProofError) as e:
        raise click.ClickException(str(e)) from None


@audit.command()
@config_option
def checkpoint(config_path: str) -> None:
    """Issue a signed checkpoint of the log now (if it grew) and print the newest one."""
    from clearance.audit.log import AuditLog
    from clearance.audit.setup import signer_from_config

    config = open_config(config_path)
    try:
        signer = signer_from_config(config)
    except NoteError as e:
        raise click.ClickException(str(e)) from None
    if signer is None:
        click.echo("warning: no audit.signing_key configured; the checkpoint is unsigned", err=True)
    click.echo(AuditLog(_engine(config), config.audit, signer).checkpoint(), nl=False)


@audit.command()
@config_option
@click.option("--since", help="Export entries logged at or after this ISO 8601 time.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Bundle file to write.")
@click.option("--key", help="Verifier key, or a file holding it.")
def export(config_path: str, since: str | None, out: str, key: str | None) -> None:
    """Write a JSON bundle of entries, checkpoints and proofs for offline checking."""
    from clearance.audit.export import ExportError, export_bundle

    config = open_config(config_path)
    t = _parse_time(since, "--since")
    verifier = _verifier(config, key)
    try:
        bundle = export_bundle(_engine(config), t, verifier, verifier.vkey() if verifier else None)
    except (ExportError, NoteError, ProofError) as e:
        raise click.ClickException(str(e)) from None
    try:
        Path(out).write_text(json.dumps(bundle, indent=1) + "\n")
    except OSError as e:
        raise click.ClickException(f"cannot write {out}: {e.strerror or e}") from None
    click.echo(f"wrote {len(bundle['entries'])} entries and {1 + len(bundle['older_checkpoints'])} checkpoints to {out}")
    click.echo(f"check it with: python -m clearance.audit.standalone_verify {out} --key <verifier key>")


@audit.command()
@config_option
@click.option("--since", help="Start of the window (ISO 8601, inclusive).")
@click.option("--until", help="End of the window (ISO 8601, exclusive).")
def report(config_path: str, since: str | None, until: str | None) -> None:
    """Summarise decisions per model, org, decision and rule, as JSON."""
    from clearance.audit.report import build_report

    config = open_config(config_path)
    t0, t1 = _parse_time(since, "--since"), _parse_time(until, "--until")
    click.echo(json.dumps(build_report(_engine(config), t0, t1), indent=2))


@audit.command("prune")
@config_option
@click.option("--before", help="Delete entries logged before this ISO 8601 time "
              "(defaults to now minus audit.retention_days).")
def prune_command(config_path: str, before: str | None) -> None:
    """Apply retention: delete old entries, keeping the hashes that proofs need."""
    from datetime import timedelta

    from clearance.audit.retention import RetentionError, prune, prune_content

    config = open_config(config_path)
    t = _parse_time(before, "--before")
    if t is None:
        if config.audit.retention_days is None:
            raise click.ClickException("give --before, or set audit.retention_days in the config")
        t = datetime.now(UTC) - timedelta(days=config.audit.retention_days)
    engine = _engine(config)
    c = prune_content(engine, t)
    try:
        n = prune(engine, t)
    except RetentionError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"pruned {n} entries and {c} stored prompts/completions logged before {t.isoformat()}")


@audit.command("content-keygen")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar="CLEARANCE_CONFIG",
              help="Write the key to this config's audit.content_key_file.")
@click.option("--out", "out", type=click.Path(dir_okay=False), help="Write the key to this file (mode 0600).")
@click.option("--force", is_flag=True, help="Replace an existing key file.")
def content_keygen(config_path: str | None, out: str | None, force: bool) -> None:
    """Make a key for encrypting stored prompts and completions (base64, 32 bytes).

    Without --out (and no audit.content_key_file in the config) the key is
    printed, to be put in the environment variable named by audit.content_key_env.
    """
    from clearance.audit.content import ContentKeyError, generate_content_key, write_content_key

    path = Path(out).resolve() if out else None
    if path is None and config_path:
        config = open_config(config_path)
        if config.audit.content_key_file:
            path = config.resolve(config.audit.content_key_file)
    if path is None:
        click.echo(generate_content_key())
        click.echo("put it in the environment variable named by audit.content_key_env "
                   "(for example CLEARANCE_AUDIT_CONTENT_KEY); keep it secret", err=True)
        return
    try:
        write_content_key(path, overwrite=force)
    except ContentKeyError as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:
        raise click.ClickException(f"cannot write the key: {e.strerror or e}") from None
    click.echo(f"content key (keep secret, mode 0600): {path}")


@audit.command("show-content")
@config_option
@click.argument("request_id")
def show_content_command(config_path: str, request_id: str) -> None:
    """Decrypt the stored prompt and completion of REQUEST_ID, checked against its log entries, as JSON."""
    from clearance.audit.content import ContentCipher, ContentError, ContentKeyError, load_content_key
    from clearance.audit.content_show import show_content

    config = open_config(config_path)
    try:
        cipher = ContentCipher(load_content_key(config))
        opened = show_content(_engine(config), cipher, request_id)
    except (ContentKeyError, ContentError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(json.dumps({"request_id": request_id, "records": [o.as_json() for o in opened]},
                          indent=2, ensure_ascii=False))

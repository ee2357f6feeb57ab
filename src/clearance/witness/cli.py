"""``clearance witness``: make a witness key and run a witness."""

from __future__ import annotations

from pathlib import Path

import click

from clearance.audit.checkpoint import NoteError, load_verifier


@click.group()
def witness() -> None:
    """A transparency-log witness (C2SP tlog-witness) that cosigns the audit log's checkpoints."""


@witness.command()
@click.option("--name", required=True, help="The witness's name, e.g. witness.example.org/w1.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Signing key file (mode 0600); the verifier key goes to OUT.pub.")
@click.option("--force", is_flag=True, help="Overwrite an existing key.")
def keygen(name: str, out: str, force: bool) -> None:
    """Generate the witness's Ed25519 cosigning key; print its verifier key."""
    from clearance.witness.cosign import write_witness_key

    try:
        signer = write_witness_key(name, Path(out), force)
    except NoteError as e:
        raise click.ClickException(str(e)) from None
    click.echo(signer.verifier.vkey())


@witness.command()
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False, exists=True),
              help="The witness's signing key (from `clearance witness keygen`).")
@click.option("--log", "logs", multiple=True, required=True,
              help="Verifier key of a log to follow (the key or a file holding it); repeatable.")
@click.option("--state", "state_path", required=True, type=click.Path(dir_okay=False),
              help="Where the witness keeps the latest cosigned checkpoint of each log.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8090, show_default=True)
def serve(key_path: str, logs: tuple[str, ...], state_path: str, host: str, port: int) -> None:
    """Run the witness."""
    import uvicorn

    from clearance.logging import setup_logging
    from clearance.witness.cosign import Cosigner
    from clearance.witness.server import Witness, WitnessState, create_witness_app

    setup_logging("json", "INFO")
    try:
        w = Witness(Cosigner.load(key_path), [load_verifier(v) for v in logs], WitnessState(Path(state_path)))
    except (NoteError, OSError, ValueError) as e:
        raise click.ClickException(f"the witness cannot start: {e}") from None
    uvicorn.run(create_witness_app(w), host=host, port=port, loop="uvloop", log_level="warning",
                http="clearance.httpserver:HttpProtocol", access_log=False, workers=1)

"""One witness makes the database's own operator's rewrites evident.

A witness runs on a loopback port (``clearance.witness.server``, as ``clearance
witness serve`` runs it); the log submits each checkpoint with its consistency
proof and stores the cosignature.  Every tampering case that the log alone
passes then fails ``audit verify --witness URL``, and a rewritten history that
the operator re-signs with the log's own key is refused by the witness.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from clearance.audit.setup import open_audit_log
from clearance.cli import main
from clearance.config import load_config
from clearance.demo.run import start_in_thread
from clearance.store.db import make_engine, migrate
from clearance.witness.cosign import Cosigner, write_witness_key
from clearance.witness.server import Witness, WitnessState, create_witness_app
from clearance.witness.submit import submitter_from_config
from tests.conftest import free_port
from tests.integration.test_audit_published import N, World, _entry, _leaf


class Witnessed(World):
    def __init__(self, *args, log, submitter, witness_url: str, witness_key: Path) -> None:
        super().__init__(*args)
        self.log, self.submitter, self.witness_url, self.witness_key = log, submitter, witness_url, witness_key

    def submit(self) -> None:
        async def go():
            async with aiohttp.ClientSession() as session:
                await self.submitter.submit_latest(session)

        asyncio.run(go())

    def verify_witnessed(self, *args: str):
        return self.verify("--witness", self.witness_url, "--witness-key", str(self.witness_key), *args)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Witnessed]:
    cosigner = write_witness_key("witness.test/w1", tmp_path / "witness.key")
    cfg = tmp_path / "clearance.yaml"
    port = free_port()
    cfg.write_text("state_dir: state\naudit:\n  origin: test.example/audit\n  signing_key: keys/audit.key\n"
                   "  checkpoint_interval_seconds: 3600\n  checkpoint_dir: published\n"
                   f"  witnesses: [{{url: 'http://127.0.0.1:{port}', key: witness.key.pub}}]\n")
    assert CliRunner().invoke(main, ["audit", "keygen", "--config", str(cfg)]).exit_code == 0
    config = load_config(cfg)
    log_key = open_audit_log(config, make_engine(config.db_url)).signer  # only to learn the verifier key
    witness = Witness(Cosigner.load(tmp_path / "witness.key"), [log_key.verifier], WitnessState(tmp_path / "w.json"))
    server = start_in_thread(create_witness_app(witness), port)
    (tmp_path / "state").mkdir(exist_ok=True)
    engine = make_engine(config.db_url)
    migrate(engine)
    log = open_audit_log(config, engine)
    w = Witnessed(cfg, engine, tmp_path / "published", tmp_path / "mirror", log=log,
                  submitter=submitter_from_config(config, engine), witness_url=f"http://127.0.0.1:{port}",
                  witness_key=tmp_path / "witness.key.pub")
    for i in range(N):
        log.append_sync(_entry(i))
        if (i + 1) % 10 == 0:
            log.checkpoint()
            w.submit()
    assert cosigner.verifier.vkey() == w.submitter.witnesses[0][1].vkey()
    yield w
    server.should_exit = True
    engine.dispose()


def _passes_alone_fails_against_the_witness(world: Witnessed) -> str:
    assert world.verify().exit_code == 0
    r = world.verify_witnessed("--json")
    assert r.exit_code != 0, r.output
    return "\n".join(json.loads(r.output[: r.output.rindex("}") + 1])["problems"])


def test_checkpoints_are_cosigned_and_the_log_verifies_against_the_witness(world: Witnessed) -> None:
    from sqlalchemy import text

    with world.engine.connect() as conn:
        notes = dict(conn.execute(text("SELECT size, note FROM audit_checkpoints")).all())
    assert all("\u2014 witness.test/w1 " in notes[s] for s in (10, 20, 30, 40))
    assert "\u2014 witness.test/w1 " in (world.published / "checkpoint").read_text()
    r = world.verify_witnessed()
    assert r.exit_code == 0 and "consistent with 1 trusted checkpoints" in r.output, r.output


def test_all_checkpoint_rows_deleted(world: Witnessed) -> None:
    world.sql("DELETE FROM audit_checkpoints")
    assert "not in the database" in _passes_alone_fails_against_the_witness(world)


def test_mid_log_edit_with_hashes_recomputed(world: Witnessed) -> None:
    body = world.body(17).replace('"alice"', '"mallory"')
    world.sql("UPDATE audit_entries SET body = :b, leaf_hash = :h WHERE idx = 17", b=body, h=_leaf(body))
    world.sql("DELETE FROM audit_checkpoints WHERE size > 10")
    world.rewrite_head()
    assert "checkpoint at size 40" in _passes_alone_fails_against_the_witness(world)


def test_tail_truncated(world: Witnessed) -> None:
    world.sql("DELETE FROM audit_entries WHERE idx >= 25")
    world.sql("DELETE FROM audit_checkpoints WHERE size > 20")
    world.rewrite_head()
    assert "no longer stored" in _passes_alone_fails_against_the_witness(world)


def test_edits_after_the_newest_stored_checkpoint(world: Witnessed) -> None:
    world.sql("DELETE FROM audit_checkpoints WHERE size > 30")
    body = world.body(35).replace('"alice"', '"mallory"')
    world.sql("UPDATE audit_entries SET body = :b, leaf_hash = :h WHERE idx = 35", b=body, h=_leaf(body))
    world.rewrite_head()
    assert "checkpoint at size 40" in _passes_alone_fails_against_the_witness(world)


def test_a_rewritten_history_signed_with_the_logs_key_is_not_cosigned(world: Witnessed, caplog) -> None:
    """The operator holds the signing key, rewrites entry 17, and lets the log sign new checkpoints."""
    body = world.body(17).replace('"alice"', '"mallory"')
    world.sql("UPDATE audit_entries SET body = :b, leaf_hash = :h WHERE idx = 17", b=body, h=_leaf(body))
    world.sql("DELETE FROM audit_checkpoints WHERE size > 10")
    world.rewrite_head()
    log = open_audit_log(load_config(world.cfg), world.engine)  # a restarted gateway: reads the rewritten head
    for i in range(N, N + 5):
        log.append_sync(_entry(i))
    log.checkpoint()
    with caplog.at_level("ERROR", logger="clearance.witness"):
        world.submit()
    assert "consistency" in caplog.text or "refused" in caplog.text
    assert world.verify().exit_code == 0  # the database agrees with itself, newly signed checkpoint included
    assert world.verify_witnessed().exit_code != 0

"""`clearance audit verify` against a database that is really edited, on SQLite and PostgreSQL.

A log of 40 entries with signed checkpoints at sizes 10, 20, 30 and 40 is
written through ``AuditLog``; each test then edits the store the way an
operator with database access could and checks that verification fails and
names the first bad entry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import pg_database
from click.testing import CliRunner
from sqlalchemy import Engine, text

from clearance.audit.setup import open_audit_log
from clearance.cli import main
from clearance.config import load_config
from clearance.store.db import make_engine, migrate
from clearance.types import AuditEntry

N = 40




@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state' / 'clearance.db'}"
    else:
        yield from pg_database()


def _entry(i: int) -> AuditEntry:
    return AuditEntry(time=f"2025-03-01T10:00:{i:02d}Z", request_id=f"req-{i}", kind="decision",
                      principal="alice", org="acme", model="gpt-test", decision="allow" if i % 4 else "deny",
                      reasons=["policy-a"] if i % 4 else ["directive-export"])


class World:
    def __init__(self, cfg_path: Path, engine: Engine) -> None:
        self.cfg_path = cfg_path
        self.engine = engine

    def cli(self, *args: str):
        return CliRunner().invoke(main, ["audit", *args, "--config", str(self.cfg_path)])

    def sql(self, statement: str, **params) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(statement), params)

    def body(self, idx: int) -> str:
        with self.engine.connect() as conn:
            return conn.execute(text("SELECT body FROM audit_entries WHERE idx = :i"), {"i": idx}).scalar_one()


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[World]:
    cfg_path = tmp_path / "clearance.yaml"
    cfg_path.write_text(
        f"state_dir: state\ndatabase_url: '{db_url}'\n"
        "audit:\n  origin: test.example/audit\n  signing_key: keys/audit.key\n  checkpoint_interval_seconds: 3600\n"
    )
    r = CliRunner().invoke(main, ["audit", "keygen", "--config", str(cfg_path)])
    assert r.exit_code == 0, r.output
    (tmp_path / "state").mkdir(exist_ok=True)
    engine = make_engine(db_url)
    migrate(engine)
    log = open_audit_log(load_config(cfg_path), engine)
    for i in range(N):
        log.append_sync(_entry(i))
        if (i + 1) % 10 == 0:
            log.checkpoint()
    w = World(cfg_path, engine)
    yield w
    engine.dispose()


def _leaf(body: str) -> bytes:
    return hashlib.sha256(b"\x00" + body.encode()).digest()


def _fails(world: World, first_bad_at_most: int, first_bad_at_least: int = 0) -> str:
    r = world.cli("verify", "--json")
    assert r.exit_code != 0, r.output
    report = json.loads(r.output[: r.output.rindex("}") + 1])
    assert not report["ok"]
    first = report["first_bad_entry"]
    if first_bad_at_most >= 0:
        assert first is not None and first_bad_at_least <= first <= first_bad_at_most, report
    assert "first bad entry" in r.output or first is None
    return "\n".join(report["problems"])


def test_untouched_log_verifies(world: World) -> None:
    r = world.cli("verify")
    assert r.exit_code == 0, r.output
    assert f"OK: {N} entries, 4 checkpoints, 4 signatures verified" in r.output


def test_update_entry_content(world: World) -> None:
    world.sql("UPDATE audit_entries SET body = :b WHERE idx = 17", b=world.body(17).replace('"alice"', '"mallory"'))
    msg = _fails(world, 17, 17)
    assert "entry 17 was modified" in msg


def test_update_entry_content_and_leaf_hash(world: World) -> None:
    body = world.body(17).replace('"deny"', '"allow"').replace('"alice"', '"mallory"')
    world.sql("UPDATE audit_entries SET body = :b, leaf_hash = :h WHERE idx = 17", b=body, h=_leaf(body))
    msg = _fails(world, 17, 10)
    assert "checkpoint at size 20" in msg


def test_delete_an_entry(world: World) -> None:
    world.sql("DELETE FROM audit_entries WHERE idx = 23")
    assert "entry 23 is missing" in _fails(world, 23, 23)


def test_delete_the_newest_entries(world: World) -> None:
    world.sql("DELETE FROM audit_entries WHERE idx >= 38")
    assert "38" in _fails(world, 38, 30)


def test_swap_two_entries(world: World) -> None:
    world.sql("UPDATE audit_entries SET idx = -1 WHERE idx = 12")
    world.sql("UPDATE audit_entries SET idx = 12 WHERE idx = 15")
    world.sql("UPDATE audit_entries SET idx = 15 WHERE idx = -1")
    _fails(world, 12, 10)


def test_swap_two_entry_bodies(world: World) -> None:
    a, b = world.body(12), world.body(15)
    world.sql("UPDATE audit_entries SET body = :b WHERE idx = 12", b=b)
    world.sql("UPDATE audit_entries SET body = :b WHERE idx = 15", b=a)
    assert "entry 12 was modified" in _fails(world, 12, 12)


def test_insert_an_entry_in_the_middle(world: World) -> None:
    world.sql("UPDATE audit_entries SET idx = -(idx + 2) WHERE idx >= 25")
    world.sql("UPDATE audit_entries SET idx = -idx - 1 WHERE idx < 0")
    body = world.body(24).replace('"req-24"', '"req-forged"')
    world.sql("INSERT INTO audit_entries (idx, body, leaf_hash, logged_at) "
              "SELECT 25, :b, :h, logged_at FROM audit_entries WHERE idx = 24", b=body, h=_leaf(body))
    _fails(world, 25, 20)


def test_insert_an_entry_beyond_the_head(world: World) -> None:
    body = world.body(39).replace('"req-39"', '"req-forged"')
    world.sql("INSERT INTO audit_entries (idx, body, leaf_hash, logged_at) "
              "SELECT 40, :b, :h, logged_at FROM audit_entries WHERE idx = 39", b=body, h=_leaf(body))
    assert "inserted" in _fails(world, 40, 40)


def test_alter_a_checkpoint_root_column(world: World) -> None:
    world.sql("UPDATE audit_checkpoints SET root = :r WHERE size = 20", r=b"\x07" * 32)
    assert "differs from its signed text" in _fails(world, -1)


def test_alter_a_checkpoint_note(world: World) -> None:
    with world.engine.connect() as conn:
        note = conn.execute(text("SELECT note FROM audit_checkpoints WHERE size = 30")).scalar_one()
    forged = note.replace("\n30\n", "\n29\n", 1)
    world.sql("UPDATE audit_checkpoints SET note = :n WHERE size = 30", n=forged)
    assert "does not verify" in _fails(world, -1)


def test_rewrite_everything_without_the_key(world: World) -> None:
    """Rewriting entries, leaf hashes and unsigned checkpoints is still caught by the signatures."""
    body = world.body(3).replace('"alice"', '"mallory"')
    world.sql("UPDATE audit_entries SET body = :b, leaf_hash = :h WHERE idx = 3", b=body, h=_leaf(body))
    world.sql("UPDATE audit_checkpoints SET note = 'x' WHERE size >= 10")
    _fails(world, -1)


def test_prove_export_and_standalone_verifier(world: World, tmp_path: Path) -> None:
    from clearance.audit import standalone_verify
    from clearance.audit.merkle import verify_inclusion

    r = world.cli("prove", "17")
    assert r.exit_code == 0, r.output
    proof = json.loads(r.output)
    b64 = __import__("base64").b64decode
    verify_inclusion(b64(proof["leaf_hash"]), 17, proof["tree_size"], [b64(h) for h in proof["proof"]], b64(proof["root"]))
    assert world.cli("prove", "999").exit_code != 0

    bundle = tmp_path / "bundle.json"
    r = world.cli("export", "--out", str(bundle))
    assert r.exit_code == 0, r.output
    vkey = (tmp_path / "keys" / "audit.key.pub").read_text().strip()
    assert standalone_verify.main([str(bundle), "--key", vkey]) == 0
    data = json.loads(bundle.read_text())
    assert len(data["entries"]) == N and len(data["older_checkpoints"]) == 3
    data["entries"][5]["entry"] = data["entries"][5]["entry"].replace("alice", "mallory")
    bundle.write_text(json.dumps(data))
    assert standalone_verify.main([str(bundle), "--key", vkey]) == 1


def test_report(world: World) -> None:
    r = world.cli("report", "--since", "2000-01-01")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["decisions"] == N
    assert rep["by_decision"] == {"allow": 30, "deny": 10}
    assert rep["by_rule"]["directive-export"]["denials"] == 10
    assert rep["by_model"]["gpt-test"]["deny"] == 10
    assert world.cli("report", "--since", "yesterday").exit_code == 2

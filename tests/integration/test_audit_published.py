"""Tampering by the database's own operator, caught by checkpoints kept outside the database.

The operator can delete checkpoint rows, recompute leaf hashes and rewrite the
head row, so the log alone verifies after each of the edits below
(``audit verify`` exits 0).  With a mirrored copy of the published checkpoint
folder (``--checkpoints``) or one checkpoint an auditor kept
(``--trusted-checkpoint``), every one of them is found.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from clearance.audit.merkle import Frontier
from clearance.audit.setup import open_audit_log
from clearance.cli import main
from clearance.config import load_config
from clearance.store.db import make_engine, migrate
from clearance.types import AuditEntry

N = 40


def _entry(i: int) -> AuditEntry:
    return AuditEntry(time=f"2025-03-01T10:00:{i:02d}Z", request_id=f"req-{i}", kind="decision",
                      principal="alice", org="acme", model="gpt-test", decision="allow" if i % 4 else "deny")


def _leaf(body: str) -> bytes:
    return hashlib.sha256(b"\x00" + body.encode()).digest()


class World:
    def __init__(self, cfg: Path, engine, published: Path, mirror: Path) -> None:
        self.cfg, self.engine, self.published, self.mirror = cfg, engine, published, mirror

    def verify(self, *args: str):
        return CliRunner().invoke(main, ["audit", "verify", *args, "--config", str(self.cfg)])

    def sql(self, statement: str, **params) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(statement), params)

    def body(self, idx: int) -> str:
        with self.engine.connect() as conn:
            return conn.execute(text("SELECT body FROM audit_entries WHERE idx = :i"), {"i": idx}).scalar_one()

    def rewrite_head(self) -> None:
        """What an operator does to make the log agree with itself again: recompute the head row."""
        with self.engine.connect() as conn:
            leaves = [bytes(h) for (h,) in conn.execute(text("SELECT leaf_hash FROM audit_entries ORDER BY idx"))]
        f = Frontier()
        f.extend(leaves)
        self.sql("UPDATE audit_head SET size = :s, frontier = :f WHERE id = 1", s=len(leaves), f=f.to_bytes())


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    cfg = tmp_path / "clearance.yaml"
    cfg.write_text("state_dir: state\naudit:\n  origin: test.example/audit\n  signing_key: keys/audit.key\n"
                   "  checkpoint_interval_seconds: 3600\n  checkpoint_dir: published\n")
    assert CliRunner().invoke(main, ["audit", "keygen", "--config", str(cfg)]).exit_code == 0
    (tmp_path / "state").mkdir()
    config = load_config(cfg)
    engine = make_engine(config.db_url)
    migrate(engine)
    log = open_audit_log(config, engine)
    for i in range(N):
        log.append_sync(_entry(i))
        if (i + 1) % 10 == 0:
            log.checkpoint()
    mirror = tmp_path / "auditor-mirror"
    shutil.copytree(tmp_path / "published", mirror)  # what an auditor's mirror holds
    yield World(cfg, engine, tmp_path / "published", mirror)
    engine.dispose()


def _passes_alone_fails_against_the_mirror(world: World) -> str:
    alone = world.verify()
    assert alone.exit_code == 0, alone.output  # the edit is invisible to the log on its own
    r = world.verify("--checkpoints", str(world.mirror), "--json")
    assert r.exit_code != 0, r.output
    report = json.loads(r.output[: r.output.rindex("}") + 1])
    assert not report["ok"]
    return "\n".join(report["problems"])


def test_published_files_are_c2sp_checkpoints(world: World) -> None:
    newest = (world.published / "checkpoint").read_text()
    assert newest.startswith("test.example/audit\n40\n") and "\n\n\u2014 test.example/audit " in newest
    assert sorted(int(p.name) for p in (world.published / "checkpoints").iterdir()) == [10, 20, 30, 40]
    r = world.verify("--checkpoints", str(world.mirror))
    assert r.exit_code == 0 and "consistent with 5 trusted checkpoints" in r.output, r.output


def test_all_checkpoint_rows_deleted(world: World) -> None:
    world.sql("DELETE FROM audit_checkpoints")
    assert "not in the database" in _passes_alone_fails_against_the_mirror(world)


def test_mid_log_edit_with_hashes_recomputed_and_later_checkpoints_deleted(world: World) -> None:
    body = world.body(17).replace('"deny"', '"allow"').replace('"alice"', '"mallory"')
    world.sql("UPDATE audit_entries SET body = :b, leaf_hash = :h WHERE idx = 17", b=body, h=_leaf(body))
    world.sql("DELETE FROM audit_checkpoints WHERE size > 10")
    world.rewrite_head()
    problems = _passes_alone_fails_against_the_mirror(world)
    assert "checkpoint at size 20" in problems


def test_tail_truncated_past_a_checkpoint(world: World) -> None:
    world.sql("DELETE FROM audit_entries WHERE idx >= 25")
    world.sql("DELETE FROM audit_checkpoints WHERE size > 20")
    world.rewrite_head()
    assert "no longer stored" in _passes_alone_fails_against_the_mirror(world)


def test_edits_after_the_newest_stored_checkpoint(world: World) -> None:
    """The operator edits entries the newest checkpoint row does not cover, after deleting the
    newer checkpoint rows that did: the published checkpoints still cover them."""
    world.sql("DELETE FROM audit_checkpoints WHERE size > 30")
    for idx in (33, 38):
        body = world.body(idx).replace('"alice"', '"mallory"')
        world.sql("UPDATE audit_entries SET body = :b, leaf_hash = :h WHERE idx = :i", b=body, h=_leaf(body), i=idx)
    world.rewrite_head()
    assert "checkpoint at size 40" in _passes_alone_fails_against_the_mirror(world)


def test_one_trusted_checkpoint_is_enough(world: World, tmp_path: Path) -> None:
    kept = tmp_path / "kept-checkpoint"
    shutil.copy(world.mirror / "checkpoint", kept)
    assert world.verify("--trusted-checkpoint", str(kept)).exit_code == 0
    world.sql("DELETE FROM audit_entries WHERE idx >= 35")
    world.sql("DELETE FROM audit_checkpoints WHERE size > 30")
    world.rewrite_head()
    assert world.verify().exit_code == 0
    r = world.verify("--trusted-checkpoint", str(kept))
    assert r.exit_code != 0 and "no longer stored" in r.output


def test_a_forged_trusted_checkpoint_is_refused(world: World, tmp_path: Path) -> None:
    forged = (world.mirror / "checkpoint").read_text().replace("\n40\n", "\n39\n", 1)
    (tmp_path / "forged").write_text(forged)
    r = world.verify("--trusted-checkpoint", str(tmp_path / "forged"))
    assert r.exit_code != 0 and "does not verify" in r.output


def test_an_empty_mirror_proves_nothing(world: World, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    r = world.verify("--checkpoints", str(tmp_path / "empty"))
    assert r.exit_code != 0 and "no published checkpoints" in r.output

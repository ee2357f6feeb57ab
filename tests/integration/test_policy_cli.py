"""The directive, approval and grant CLI groups against a real SQLite store."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from click.testing import CliRunner

import clearance.policy
from clearance.cli import main
from clearance.identity.tables import Org, User
from clearance.store.db import make_engine, make_sessionmaker, migrate

T = datetime(2025, 1, 1, tzinfo=timezone.utc)
DEMO = Path(clearance.policy.__file__).parent / "policies" / "demo.cedar"


def setup(tmp_path: Path) -> str:
    cfg = tmp_path / "clearance.yaml"
    cfg.write_text(
        "state_dir: .\n"
        "backends:\n  - {name: api, base_url: 'http://127.0.0.1:9/v1'}\n"
        "  - {name: local, base_url: 'http://127.0.0.1:9/v1', self_hosted: true}\n"
        "models:\n  - {name: frontier-general, family: frontier, backends: [api, local]}\n"
        "  - {name: open-local, family: open, backends: [local]}\n"
        f"policy:\n  files: ['{DEMO}']\n"
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'clearance.db'}")
    migrate(engine)
    with make_sessionmaker(engine).begin() as s:
        s.add(Org(slug="eu-lab", created_at=T))
        s.flush()
        s.add(User(id="intl-researcher", org_slug="eu-lab", nationality="DE", us_person=False, verified=True,
                   created_at=T, attributes={}))
    engine.dispose()
    return str(cfg)


def test_directive_commands(tmp_path):
    cfg = setup(tmp_path)
    run = CliRunner().invoke
    good = tmp_path / "suspend.cedar"
    good.write_text('forbid (principal, action, resource in Clearance::ModelFamily::"frontier")\n'
                    "unless { principal.us_person };\n")
    bad = tmp_path / "bad.cedar"
    bad.write_text("forbid (principal, action, resource)\nunless { principal.us_persn };\n")

    r = run(main, ["directive", "whatif", str(good), "--config", cfg, "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert [(c["user"], c["model"], c["change"]) for c in report["changes"]] == [
        ("intl-researcher", "frontier-general", "lose")]
    assert report["changes"][0]["fallback"] == ["open-local"]

    r = run(main, ["directive", "apply", str(bad), "--id", "X", "--title", "x", "--config", cfg])
    assert r.exit_code != 0 and "line 2, column 20" in r.output and "Traceback" not in r.output
    r = run(main, ["directive", "apply", str(good), "--id", "EO-1", "--title", "Suspended",
                   "--expires-at", "not-a-date", "--config", cfg])
    assert r.exit_code != 0 and "ISO 8601" in r.output
    r = run(main, ["directive", "apply", str(good), "--id", "EO-1", "--title", "Suspended", "--config", cfg])
    assert r.exit_code == 0, r.output
    r = run(main, ["directive", "list", "--json", "--config", cfg])
    assert [d["status"] for d in json.loads(r.output)] == ["in_force"]
    r = run(main, ["directive", "revoke", "EO-1", "--reason", "lifted", "--config", cfg])
    assert r.exit_code == 0
    r = run(main, ["directive", "revoke", "EO-1", "--config", cfg])
    assert r.exit_code != 0 and "already revoked" in r.output


def test_approval_and_grant_commands(tmp_path):
    cfg = setup(tmp_path)
    run = CliRunner().invoke
    r = run(main, ["approval", "request", "--org", "eu-lab", "--model", "frontier-general", "--config", cfg])
    assert r.exit_code == 0, r.output
    aid = json.loads(run(main, ["approval", "list", "--json", "--config", cfg]).output)[0]["id"]
    assert run(main, ["approval", "deny", aid, "--config", cfg]).exit_code != 0  # --reason is required
    assert run(main, ["approval", "deny", aid, "--reason", "not vetted", "--config", cfg]).exit_code == 0
    assert json.loads(run(main, ["approval", "list", "--json", "--config", cfg]).output)[0]["status"] == "denied"
    r = run(main, ["grant", "add", "--org", "eu-lab", "--model", "frontier-general", "--from", "2025-01-01",
                   "--until", "2025-01-31", "--config", cfg])
    assert r.exit_code == 0, r.output
    assert json.loads(run(main, ["grant", "list", "--json", "--config", cfg]).output)[0]["status"] == "closed"
    r = run(main, ["grant", "add", "--org", "nowhere", "--model", "frontier-general", "--from", "2025-01-01",
                   "--until", "2025-01-31", "--config", cfg])
    assert r.exit_code != 0 and "unknown org" in r.output

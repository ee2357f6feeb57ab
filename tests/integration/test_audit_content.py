"""`audit.store_content` through the real gateway: prompts and completions kept encrypted, read back checked.

The gateway runs as a subprocess (SQLite store, SIMULATED upstream); requests
come from the official OpenAI SDK; content is read back with `clearance audit
show-content`, and the store is edited directly to show that swapped
ciphertext is refused.  PostgreSQL's commit path for content is covered by the
unit tests in tests/unit/audit/test_content.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time

import openai
import pytest
import yaml

from clearance.audit.content import generate_content_key
from tests.conftest import free_port
from tests.integration.gateway import add_persona, run_cli, start_gateway, start_upstream, write_config

KEY_ENV = "CLEARANCE_TEST_AUDIT_CONTENT_KEY"
POLICY = ('@id("allow-all")\npermit (principal, action, resource);\n'
          '@id("no-secret-model")\nforbid (principal, action, resource == Clearance::Model::"secret");\n')


# The request entries, without the control-plane change entries that setting up the world wrote.
DECISIONS = "SELECT body FROM audit_entries WHERE body NOT LIKE '%\"kind\":\"change\"%' ORDER BY idx"


def _world(tmp, audit: dict, env: dict):
    upstream = start_upstream("primary-sim")
    (tmp / "policy.cedar").write_text(POLICY)
    config = write_config(
        tmp, f"sqlite:///{tmp / 'clearance.db'}",
        [{"name": "primary", "base_url": upstream.url + "/v1"}],
        [{"name": "chat", "backends": ["primary"]}, {"name": "secret", "backends": ["primary"]}],
        policy={"files": ["policy.cedar"]}, guard={"enabled": False}, audit=audit,
    )
    key = add_persona(config, "alice", "acme")
    gw = start_gateway(config, env=env)
    return upstream, config, key, gw


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("content")
    content_key = generate_content_key()
    upstream, config, key, gw = _world(
        tmp, {"store_content": True, "content_key_env": KEY_ENV, "checkpoint_interval_seconds": 0.2},
        {KEY_ENV: content_key})
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    yield {"gw": gw, "config": config, "client": client, "content_key": content_key, "db": tmp / "clearance.db"}
    gw.stop()
    upstream.stop()


def _show(world, client_id: str, monkeypatch) -> subprocess.CompletedProcess:
    """``audit show-content`` of the request the client sent with ``x-request-id: client_id``."""
    monkeypatch.setenv(KEY_ENV, world["content_key"])
    request_id = _entries_of(world["db"], client_id, 1)[0]["request_id"]
    return run_cli(world["config"], "audit", "show-content", request_id, check=False)


def _rows(db, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def _entries_of(db, client_id: str, n: int = 2) -> list[dict]:
    """The entries of the request sent with ``x-request-id: client_id`` once ``n`` are committed
    (a completion entry follows its answer by a few ms)."""
    deadline = time.monotonic() + 10
    while True:
        got = [json.loads(b) for (b,) in _rows(db, DECISIONS)]
        got = [e for e in got if e["client_request_id"] == client_id]
        if len(got) >= n or time.monotonic() > deadline:
            return got
        time.sleep(0.02)


def test_prompt_and_completion_round_trip(world, monkeypatch) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Quarterly numbers, please"}]
    done = world["client"].chat.completions.create(model="chat", messages=messages,
                                                   extra_headers={"x-request-id": "content-plain-1"})
    answer = done.choices[0].message.content
    assert [e["kind"] for e in _entries_of(world["db"], "content-plain-1")] == ["decision", "completion"]
    proc = _show(world, "content-plain-1", monkeypatch)
    assert proc.returncode == 0, proc.stderr
    records = json.loads(proc.stdout)["records"]
    assert [(r["entry_kind"], r["part"]) for r in records] == [("decision", "prompt"), ("completion", "completion")]
    assert records[0]["messages"] == messages
    assert records[1]["text"] == answer
    # The ciphertext holds neither text; the hashed entry keeps only the digests.
    blobs = b"".join(bytes(c) for (c,) in _rows(world["db"], "SELECT ciphertext FROM audit_content"))
    assert b"Quarterly numbers" not in blobs and answer.encode() not in blobs
    bodies = "".join(b for (b,) in _rows(world["db"], "SELECT body FROM audit_entries"))
    assert "Quarterly numbers" not in bodies and answer not in bodies
    assert run_cli(world["config"], "audit", "verify").returncode == 0


def test_stream_keeps_the_prompt_with_the_decision_and_the_answer_with_the_completion(world, monkeypatch) -> None:
    chunks = world["client"].chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "stream it"}], stream=True,
        extra_headers={"x-request-id": "content-stream-1"})
    answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert [e["kind"] for e in _entries_of(world["db"], "content-stream-1")] == ["decision", "completion"]
    proc = _show(world, "content-stream-1", monkeypatch)
    assert proc.returncode == 0, proc.stderr
    records = json.loads(proc.stdout)["records"]
    assert [(r["entry_kind"], r["part"]) for r in records] == [("decision", "prompt"), ("completion", "completion")]
    assert records[0]["messages"] == [{"role": "user", "content": "stream it"}]
    assert records[1]["text"] == answer


def test_a_denied_request_keeps_its_prompt(world, monkeypatch) -> None:
    with pytest.raises(openai.PermissionDeniedError):
        world["client"].chat.completions.create(model="secret", messages=[{"role": "user", "content": "let me in"}],
                                                extra_headers={"x-request-id": "content-denied-1"})
    records = json.loads(_show(world, "content-denied-1", monkeypatch).stdout)["records"]
    assert [r["part"] for r in records] == ["prompt"]
    assert records[0]["messages"] == [{"role": "user", "content": "let me in"}]


def test_swapped_ciphertext_is_refused(world, monkeypatch) -> None:
    for i in (1, 2):
        world["client"].chat.completions.create(model="chat", messages=[{"role": "user", "content": f"swap {i}"}],
                                                extra_headers={"x-request-id": f"content-swap-{i}"})
        assert len(_entries_of(world["db"], f"content-swap-{i}")) == 2
    (a_idx, a_nonce, a_ct), (b_idx, b_nonce, b_ct) = _rows(
        world["db"], "SELECT entry_idx, nonce, ciphertext FROM audit_content WHERE part = 'completion' "
        "AND request_id IN (?, ?) ORDER BY entry_idx",
        *[_entries_of(world["db"], f"content-swap-{i}")[0]["request_id"] for i in (1, 2)])
    with sqlite3.connect(world["db"]) as conn:
        for idx, nonce, ct in ((a_idx, b_nonce, b_ct), (b_idx, a_nonce, a_ct)):
            conn.execute("UPDATE audit_content SET nonce = ?, ciphertext = ? WHERE entry_idx = ? AND part = 'completion'",
                         (nonce, ct, idx))
    proc = _show(world, "content-swap-1", monkeypatch)
    assert proc.returncode == 1
    assert "does not belong to this entry or was modified" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_show_content_with_the_wrong_key_or_no_key(world, monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, generate_content_key())
    proc = run_cli(world["config"], "audit", "show-content",
                   _entries_of(world["db"], "content-plain-1", 1)[0]["request_id"], check=False)
    assert proc.returncode == 1 and "encrypted with key" in proc.stderr
    monkeypatch.delenv(KEY_ENV)
    proc = run_cli(world["config"], "audit", "show-content",
                   _entries_of(world["db"], "content-plain-1", 1)[0]["request_id"], check=False)
    assert proc.returncode == 1 and KEY_ENV in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("value", [None, "c2hvcnQ=", "not base64!"])
def test_missing_or_invalid_key_refuses_to_start(tmp_path, value) -> None:
    upstream = start_upstream("primary-sim")
    try:
        config = write_config(tmp_path, f"sqlite:///{tmp_path / 'clearance.db'}",
                              [{"name": "primary", "base_url": upstream.url + "/v1"}],
                              [{"name": "chat", "backends": ["primary"]}], guard={"enabled": False},
                              audit={"store_content": True, "content_key_env": KEY_ENV})
        env = {k: v for k, v in os.environ.items() if k != KEY_ENV}
        if value is not None:
            env[KEY_ENV] = value
        proc = subprocess.run([sys.executable, "-m", "clearance", "serve", "--config", str(config), "--port", str(free_port())],
                              capture_output=True, text=True, env=env, timeout=60)
    finally:
        upstream.stop()
    assert proc.returncode != 0
    assert "audit" in proc.stderr and KEY_ENV in proc.stderr
    assert "Traceback" not in proc.stderr
    if value is not None:
        assert value not in proc.stderr


def test_default_config_stores_only_digests(tmp_path, monkeypatch) -> None:
    upstream, config, key, gw = _world(tmp_path, {}, {})
    try:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
        client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "keep me private"}],
                                       extra_headers={"x-request-id": "digest-only-1"})
    finally:
        gw.stop()
        upstream.stop()
    db = tmp_path / "clearance.db"
    assert _rows(db, "SELECT count(*) FROM audit_content") == [(0,)]
    decision, completion = [json.loads(b) for (b,) in _rows(db, DECISIONS)]
    assert [decision["client_request_id"], completion["client_request_id"]] == ["digest-only-1"] * 2
    assert len(decision["prompt_sha256"]) == 64 and len(completion["completion_sha256"]) == 64
    assert "keep me private" not in json.dumps([decision, completion])
    monkeypatch.setenv(KEY_ENV, generate_content_key())
    cfg = yaml.safe_load(config.read_text())
    cfg["audit"] = {"content_key_env": KEY_ENV}  # content storage stays off; only the key is named
    (tmp_path / "show.yaml").write_text(yaml.safe_dump(cfg))
    proc = run_cli(tmp_path / "show.yaml", "audit", "show-content", decision["request_id"], check=False)
    assert proc.returncode == 1 and "no stored content" in proc.stderr


def test_answers_can_wait_for_their_whole_record(tmp_path) -> None:
    """``audit.answer_waits_for: completion``: one entry, backend and answer included, before the answer."""
    upstream, config, key, gw = _world(tmp_path, {"answer_waits_for": "completion"}, {})
    db = tmp_path / "clearance.db"
    try:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": "all at once"}],
            extra_headers={"x-request-id": "strict-1"})
        answer = raw.parse().choices[0].message.content
        got = [json.loads(b) for (b,) in _rows(db, DECISIONS)]
        (only,) = [e for e in got if e["client_request_id"] == "strict-1"]  # read at once: it came before the answer
        assert (only["kind"], only["decision"], only["backend"]) == ("decision", "allow", "primary")
        assert only["completion_sha256"] == hashlib.sha256(answer.encode()).hexdigest()
        chunks = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "stream"}],
                                                stream=True, extra_headers={"x-request-id": "strict-2"})
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        decision, completion = _entries_of(db, "strict-2")
        assert decision["backend"] == completion["backend"] == "primary"  # a stream's decision names its backend
        assert completion["kind"] == "completion"
    finally:
        gw.stop()
        upstream.stop()

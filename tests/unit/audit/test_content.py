"""Encrypted prompts and completions: keys, the cipher's binding to entries, storage next to the log, tampering."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from clearance.audit.checkpoint import CheckpointSigner
from clearance.audit.content import (
    ContentCipher,
    ContentError,
    ContentKeyError,
    cipher_from_config,
    generate_content_key,
    load_content_key,
    parse_content_key,
    prompt_bytes,
    prompt_messages,
    write_content_key,
)
from clearance.audit.content_show import show_content
from clearance.audit.log import AuditError, AuditLog
from clearance.audit.retention import prune_content
from clearance.audit.settings import AuditSettings
from clearance.audit.verify import verify_log
from clearance.config import Config
from clearance.pipeline import prompt_digest
from clearance.store.db import make_engine
from clearance.types import AuditEntry, ChatRequest, Message

ORIGIN = "test.example/audit"
MESSAGES = (Message("system", "Be brief."), Message("user", "Wie spät ist es? ☕"))


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _entry(i: int, messages=MESSAGES, completion: str | None = None, rid: str | None = None) -> AuditEntry:
    return AuditEntry(
        time=f"2025-01-01T00:00:{i % 60:02d}Z", request_id=rid or f"req-{i}", kind="decision", principal="alice",
        org="acme", model="m", decision="allow", prompt_sha256=_digest(prompt_bytes(messages)),
        completion_sha256=_digest(completion.encode()) if completion is not None else "",
    )


def _key() -> bytes:
    return base64.b64decode(generate_content_key())


# -- what is encrypted, and the cipher ------------------------------------------


def test_prompt_bytes_are_the_preimage_of_the_gateway_digest() -> None:
    req = ChatRequest(request_id="r", model="m", messages=MESSAGES)
    assert _digest(prompt_bytes(req.messages)) == prompt_digest(req)
    assert prompt_messages(prompt_bytes(MESSAGES)) == [{"role": m.role, "content": m.content} for m in MESSAGES]


def test_prompt_with_a_nul_in_its_text_is_not_split_into_messages() -> None:
    assert prompt_messages(prompt_bytes([Message("user", "a\x00b")])) is None


def test_seal_and_open_round_trip_with_a_fresh_nonce_each_time() -> None:
    cipher = ContentCipher(_key())
    data = "the answer".encode()
    a = cipher.seal("req-1", "completion", _digest(data), data)
    b = cipher.seal("req-1", "completion", _digest(data), data)
    assert len(a.nonce) == 12 and a.nonce != b.nonce and a.ciphertext != b.ciphertext
    assert data not in a.ciphertext
    assert cipher.open("req-1", "completion", _digest(data), a.nonce, a.ciphertext) == data


@pytest.mark.parametrize("change", ["request_id", "part", "digest", "ciphertext", "key"])
def test_ciphertext_is_bound_to_its_entry(change: str) -> None:
    key = _key()
    data = b"user\x00secret plan\x00"
    sealed = ContentCipher(key).seal("req-1", "prompt", _digest(data), data)
    rid, part, digest, ct = "req-1", "prompt", _digest(data), sealed.ciphertext
    cipher = ContentCipher(key)
    if change == "request_id":
        rid = "req-2"
    elif change == "part":
        part = "completion"
    elif change == "digest":
        digest = _digest(b"other")
    elif change == "ciphertext":
        ct = bytes([ct[0] ^ 1]) + ct[1:]
    else:
        cipher = ContentCipher(_key())
    with pytest.raises(ContentError):
        cipher.open(rid, part, digest, sealed.nonce, ct)


def test_seal_entry_refuses_text_that_does_not_match_the_digest() -> None:
    cipher = ContentCipher(_key())
    with pytest.raises(ContentError):
        cipher.seal_entry(_entry(1, completion="real answer"), MESSAGES, "another answer")
    with pytest.raises(ContentError):
        cipher.seal_entry(_entry(1), [Message("user", "something else")], None)
    parts = cipher.seal_entry(_entry(1, completion="real answer"), MESSAGES, "real answer")
    assert [p.part for p in parts] == ["prompt", "completion"]
    # A part the entry has no digest for is not stored.
    assert [p.part for p in cipher.seal_entry(_entry(1), MESSAGES, "an answer")] == ["prompt"]


# -- keys and settings -----------------------------------------------------------


def test_parse_content_key_errors_never_repeat_the_key() -> None:
    assert len(parse_content_key(generate_content_key(), "x")) == 32
    short = base64.b64encode(b"k" * 16).decode()
    with pytest.raises(ContentKeyError, match="16 bytes") as e:
        parse_content_key(short, "$K")
    assert short not in str(e.value)
    with pytest.raises(ContentKeyError, match="base64"):
        parse_content_key("not base64 at all!", "$K")


def _config(tmp_path: Path, **audit) -> Config:
    return Config.model_validate({"path": tmp_path / "clearance.yaml", "audit": audit})


def test_store_content_needs_a_key_setting(tmp_path: Path) -> None:
    assert AuditSettings().store_content is False
    with pytest.raises(ValidationError, match="content-keygen"):
        _config(tmp_path, store_content=True)
    assert cipher_from_config(_config(tmp_path)) is None


def test_key_from_the_environment(tmp_path: Path, monkeypatch) -> None:
    cfg = _config(tmp_path, store_content=True, content_key_env="TEST_AUDIT_CONTENT_KEY")
    monkeypatch.delenv("TEST_AUDIT_CONTENT_KEY", raising=False)
    with pytest.raises(ContentKeyError, match="not set"):
        cipher_from_config(cfg)
    monkeypatch.setenv("TEST_AUDIT_CONTENT_KEY", "dG9vIHNob3J0")
    with pytest.raises(ContentKeyError, match="must be 32"):
        cipher_from_config(cfg)
    key = generate_content_key()
    monkeypatch.setenv("TEST_AUDIT_CONTENT_KEY", key)
    assert load_content_key(cfg) == base64.b64decode(key)


def test_a_key_pasted_into_content_key_env_is_refused_without_echoing_it(tmp_path: Path) -> None:
    key = generate_content_key()
    with pytest.raises(ContentKeyError) as e:
        load_content_key(_config(tmp_path, store_content=True, content_key_env=key))
    assert key not in str(e.value)


def test_key_file_written_with_mode_0600_and_never_overwritten(tmp_path: Path) -> None:
    cfg = _config(tmp_path, store_content=True, content_key_file="keys/content.key")
    with pytest.raises(ContentKeyError, match="does not exist"):
        load_content_key(cfg)
    path = tmp_path / "keys" / "content.key"
    write_content_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    first = load_content_key(cfg)
    with pytest.raises(ContentKeyError, match="already exists"):
        write_content_key(path)
    assert load_content_key(cfg) == first
    with pytest.raises(ContentKeyError, match="only one"):
        load_content_key(_config(tmp_path, content_key_file="keys/content.key", content_key_env="K"))


# -- stored next to the log ----------------------------------------------------


def _content_rows(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            text("SELECT entry_idx, part, request_id FROM audit_content ORDER BY entry_idx, part"))]


def test_content_is_committed_with_its_entry_and_read_back_checked(engine) -> None:
    cipher = ContentCipher(_key())
    signer = CheckpointSigner.generate(ORIGIN)
    log = AuditLog(engine, AuditSettings(origin=ORIGIN), signer, cipher)
    assert log.stores_content
    log.append_sync(_entry(0), MESSAGES)  # a decision without an answer: the prompt only
    log.append_sync(_entry(1, completion="Es ist spät."), MESSAGES, "Es ist spät.")
    log.append_sync(_entry(2, rid="req-1"))  # nothing given: nothing stored
    log.checkpoint()
    assert _content_rows(engine) == [(0, "prompt", "req-0"), (1, "completion", "req-1"), (1, "prompt", "req-1")]
    opened = show_content(engine, cipher, "req-1")
    assert [(o.entry_index, o.part) for o in opened] == [(1, "prompt"), (1, "completion")]
    assert opened[0].as_json()["messages"][1] == {"role": "user", "content": "Wie spät ist es? ☕"}
    assert opened[1].as_json()["text"] == "Es ist spät."
    assert verify_log(engine, signer.verifier, ORIGIN).ok


def test_concurrent_appends_with_content_share_batches(engine) -> None:
    """Many entries per transaction: on PostgreSQL the one-statement path inserts the content too."""
    cipher = ContentCipher(_key())
    log = AuditLog(engine, AuditSettings(origin=ORIGIN), None, cipher)

    async def run() -> list[int]:
        log.start()
        out = await asyncio.gather(*[
            log.append(_entry(i, completion=f"answer {i}"), MESSAGES, f"answer {i}" if i % 3 else None)
            for i in range(120)
        ])
        await log.aclose()
        return out

    assert sorted(asyncio.run(run())) == list(range(120))
    rows = _content_rows(engine)
    assert len(rows) == 120 + 80
    for i in (0, 1, 59, 119):
        opened = show_content(engine, cipher, f"req-{i}")
        index = opened[0].entry_index
        assert all(o.entry_index == index for o in opened)
        assert [o.part for o in opened] == (["prompt", "completion"] if i % 3 else ["prompt"])


def test_content_from_two_logs_taking_turns(engine) -> None:
    """When another writer moved the head, the batch takes the long way and still stores its content."""
    cipher = ContentCipher(_key())
    other = make_engine(engine.url.render_as_string(hide_password=False))
    a = AuditLog(engine, AuditSettings(origin=ORIGIN), None, cipher)
    b = AuditLog(other, AuditSettings(origin=ORIGIN), None, cipher)
    for i in range(6):
        (a if i % 2 else b).append_sync(_entry(i, completion="x"), MESSAGES, "x")
    other.dispose()
    assert [r[0] for r in _content_rows(engine)] == [i for i in range(6) for _ in (0, 1)]
    for i in range(6):
        assert [o.entry_index for o in show_content(engine, cipher, f"req-{i}")] == [i, i]


def test_a_mismatched_text_fails_the_append_and_writes_nothing(engine) -> None:
    log = AuditLog(engine, AuditSettings(origin=ORIGIN), None, ContentCipher(_key()))
    with pytest.raises(AuditError, match="does not match"):
        log.append_sync(_entry(0, completion="real"), MESSAGES, "forged")
    assert log.size() == 0 and _content_rows(engine) == []


def test_without_a_cipher_only_digests_are_kept_and_entries_are_the_same(engine, tmp_path) -> None:
    plain = AuditLog(engine, AuditSettings(origin=ORIGIN))
    assert not plain.stores_content
    plain.append_sync(_entry(0, completion="a"), MESSAGES, "a")
    assert _content_rows(engine) == []
    other = make_engine(f"sqlite:///{tmp_path / 'with-content.db'}")
    from clearance.store.db import migrate

    migrate(other)
    AuditLog(other, AuditSettings(origin=ORIGIN), None, ContentCipher(_key())).append_sync(
        _entry(0, completion="a"), MESSAGES, "a")
    with engine.connect() as c1, other.connect() as c2:
        q = text("SELECT body, leaf_hash FROM audit_entries")
        assert [tuple(r) for r in c1.execute(q)] == [tuple(r) for r in c2.execute(q)]
    other.dispose()


@pytest.mark.parametrize("edit", ["swap", "flip", "move"])
def test_edited_content_is_refused(engine, edit: str) -> None:
    cipher = ContentCipher(_key())
    log = AuditLog(engine, AuditSettings(origin=ORIGIN), None, cipher)
    log.append_sync(_entry(0, completion="first answer"), MESSAGES, "first answer")
    log.append_sync(_entry(1, completion="second answer"), MESSAGES, "second answer")
    with engine.begin() as conn:
        if edit == "swap":  # exchange the two completions' ciphertexts (and nonces)
            rows = {r.entry_idx: (bytes(r.nonce), bytes(r.ciphertext)) for r in conn.execute(
                text("SELECT entry_idx, nonce, ciphertext FROM audit_content WHERE part = 'completion'"))}
            for idx, other in ((0, 1), (1, 0)):
                conn.execute(text("UPDATE audit_content SET nonce = :n, ciphertext = :c "
                                  "WHERE entry_idx = :i AND part = 'completion'"),
                             {"n": rows[other][0], "c": rows[other][1], "i": idx})
        elif edit == "flip":
            ct = bytes(conn.execute(text("SELECT ciphertext FROM audit_content WHERE entry_idx = 1 "
                                         "AND part = 'completion'")).scalar_one())
            conn.execute(text("UPDATE audit_content SET ciphertext = :c WHERE entry_idx = 1 AND part = 'completion'"),
                         {"c": ct[:-1] + bytes([ct[-1] ^ 1])})
        else:  # file entry 0's content under request 1, pointing at entry 1
            conn.execute(text("DELETE FROM audit_content WHERE entry_idx = 1"))
            conn.execute(text("UPDATE audit_content SET entry_idx = 1, request_id = 'req-1'"))
    with pytest.raises(ContentError, match="does not belong|modified"):
        show_content(engine, cipher, "req-1")


def test_content_under_another_request_id_is_refused(engine) -> None:
    cipher = ContentCipher(_key())
    AuditLog(engine, AuditSettings(origin=ORIGIN), None, cipher).append_sync(_entry(0), MESSAGES)
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_content SET request_id = 'req-9'"))
    with pytest.raises(ContentError, match="another request"):
        show_content(engine, cipher, "req-9")
    with pytest.raises(ContentError, match="no stored content"):
        show_content(engine, cipher, "req-0")


def test_a_different_key_is_named(engine) -> None:
    AuditLog(engine, AuditSettings(origin=ORIGIN), None, ContentCipher(_key())).append_sync(_entry(0), MESSAGES)
    with pytest.raises(ContentError, match="encrypted with key"):
        show_content(engine, ContentCipher(_key()), "req-0")


def test_prune_content_deletes_old_records_only(engine) -> None:
    cipher = ContentCipher(_key())
    log = AuditLog(engine, AuditSettings(origin=ORIGIN), None, cipher)
    for i in range(4):
        log.append_sync(_entry(i), MESSAGES)
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_content SET logged_at = :t WHERE entry_idx < 2"),
                     {"t": datetime(2020, 1, 1, tzinfo=UTC)})
    assert prune_content(engine, datetime.now(UTC) - timedelta(days=1)) == 2
    assert [r[0] for r in _content_rows(engine)] == [2, 3]
    assert log.size() == 4  # the entries themselves stay


def test_append_batch_sync_writes_the_same_rows_as_append(engine, tmp_path) -> None:
    entries = [dataclasses.replace(_entry(i), latency_ms=0.1 * i) for i in range(30)]
    one_by_one = make_engine(f"sqlite:///{tmp_path / 'one.db'}")
    from clearance.store.db import migrate

    migrate(one_by_one)
    a = AuditLog(one_by_one, AuditSettings(origin=ORIGIN))
    for e in entries:
        a.append_sync(e)
    b = AuditLog(engine, AuditSettings(origin=ORIGIN))
    assert b.append_batch_sync(entries[:10]) == 0 and b.append_batch_sync(entries[10:]) == 10
    q = text("SELECT idx, body, leaf_hash FROM audit_entries ORDER BY idx")
    h = text("SELECT size, frontier FROM audit_head")
    with one_by_one.connect() as c1, engine.connect() as c2:
        assert [tuple(map(_plain, r)) for r in c1.execute(q)] == [tuple(map(_plain, r)) for r in c2.execute(q)]
        assert tuple(map(_plain, c1.execute(h).one())) == tuple(map(_plain, c2.execute(h).one()))
    one_by_one.dispose()


def _plain(v):
    return bytes(v) if isinstance(v, memoryview) else v

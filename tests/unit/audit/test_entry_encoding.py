"""The canonical encoding of audit entries: what gets stored, hashed and verified."""

from __future__ import annotations

import dataclasses
import json

import pytest

from clearance.audit.log import AuditError, AuditLog, canonical_json, encode_entry, entry_leaf_hash
from clearance.audit.merkle import leaf_hash
from clearance.audit.settings import AuditSettings
from clearance.types import AuditEntry


def _stdlib(entry: AuditEntry) -> str:
    return json.dumps(dataclasses.asdict(entry), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize("i", [0, 1, 6, 59, 1234])
def test_plain_entries_encode_like_the_standard_library(entry, i: int) -> None:
    e = entry(i, reasons=["forbid-export", "guard:jailbreak"])
    e.principal = "zoë 😀 \"quoted\" back\\slash\nnew line \x01 \u2028"
    e.fallbacks = ["b", "a"]
    e.latency_ms = 812.5
    assert canonical_json(e) == _stdlib(e)
    assert encode_entry(e) == _stdlib(e).encode()


def test_keys_are_sorted_at_every_level(entry) -> None:
    e = entry(3)
    e.guard = {"z": 0.5, "a": 0.25, "m": 0.125}
    body = canonical_json(e)
    parsed = json.loads(body)
    assert list(parsed) == sorted(parsed)
    assert list(parsed["guard"]) == ["a", "m", "z"]
    assert " " not in body


@pytest.mark.parametrize("bad", [{"guard": {"jailbreak": float("nan")}}, {"latency_ms": float("inf")},
                                 {"latency_ms": float("-inf")}, {"principal": "\ud800"}])
def test_unencodable_entries_are_refused(entry, bad: dict) -> None:
    e = dataclasses.replace(entry(1), **bad)
    with pytest.raises(AuditError):
        encode_entry(e)


def test_values_orjson_cannot_write_fall_back_to_the_strict_encoder(entry) -> None:
    e = dataclasses.replace(entry(1), error=None, prompt_tokens=2**70)  # type: ignore[arg-type]
    body = canonical_json(e)
    assert json.loads(body)["error"] is None
    assert json.loads(body)["prompt_tokens"] == 2**70
    assert body == _stdlib(e)


def test_a_string_containing_null_still_encodes_the_same(entry) -> None:
    e = dataclasses.replace(entry(1), reasons=["nullable", "null"])
    assert canonical_json(e) == _stdlib(e)


def test_encoding_is_deterministic_and_hashes_as_stored(entry) -> None:
    e = entry(7)
    assert encode_entry(e) == encode_entry(dataclasses.replace(e))
    assert entry_leaf_hash(canonical_json(e)) == leaf_hash(encode_entry(e))


def test_an_unencodable_entry_fails_the_append_and_records_nothing(engine, entry) -> None:
    log = AuditLog(engine, AuditSettings())
    with pytest.raises(AuditError):
        log.append_sync(dataclasses.replace(entry(0), latency_ms=float("nan")))
    assert log.size() == 0

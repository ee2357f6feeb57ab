"""The Merkle verifiers against the RFC 6962 test vectors of transparency-dev/merkle."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from clearance.audit import ProofError
from clearance.audit.merkle import verify_consistency, verify_inclusion

# A copy of transparency-dev/merkle's vectors ships with the tests (see its SOURCE.md and LICENSE).
VECTORS = Path(__file__).resolve().parents[2] / "testvectors" / "rfc6962"


def _cases(kind: str) -> list[Path]:
    folder = VECTORS / kind
    if not folder.is_dir():
        return []
    return sorted(folder.rglob("*.json"))


def _b(v: str) -> bytes:
    return base64.b64decode(v)


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(VECTORS)) for p in paths]


INCLUSION = _cases("inclusion")
CONSISTENCY = _cases("consistency")


def test_vectors_present() -> None:
    assert len(INCLUSION) > 50 and len(CONSISTENCY) > 50


@pytest.mark.parametrize("path", INCLUSION, ids=_ids(INCLUSION))
def test_inclusion_vector(path: Path) -> None:
    c = json.loads(path.read_text())
    proof = [_b(h) for h in (c["proof"] or [])]
    args = (_b(c["leafHash"]), c["leafIdx"], c["treeSize"], proof, _b(c["root"]))
    if c["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        assert verify_inclusion(*args) is None


@pytest.mark.parametrize("path", CONSISTENCY, ids=_ids(CONSISTENCY))
def test_consistency_vector(path: Path) -> None:
    c = json.loads(path.read_text())
    proof = [_b(h) for h in (c["proof"] or [])]
    args = (c["size1"], c["size2"], proof, _b(c["root1"]), _b(c["root2"]))
    if c["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        assert verify_consistency(*args) is None

"""The witness cosigns a checkpoint only when it extends the last one it cosigned (C2SP tlog-witness)."""

import base64
import hashlib

import pytest

from clearance.audit.checkpoint import Checkpoint, CheckpointSigner, NoteError
from clearance.audit.merkle import Tree, consistency_proof
from clearance.witness.cosign import CosignatureVerifier, Cosigner
from clearance.witness.server import Witness, WitnessState

ORIGIN = "test.example/audit"


def _leaves(n: int, tag: str = "") -> list[bytes]:
    return [hashlib.sha256(b"\x00" + f"{tag}entry {i}".encode()).digest() for i in range(n)]


def _note(signer: CheckpointSigner, leaves: list[bytes]) -> str:
    return signer.sign(Checkpoint(ORIGIN, len(leaves), Tree(leaves).root()).text())


def _body(old: int, proof: list[bytes], note: str) -> bytes:
    return (f"old {old}\n" + "".join(base64.b64encode(h).decode() + "\n" for h in proof) + "\n" + note).encode()


@pytest.fixture
def world(tmp_path):
    log_key = CheckpointSigner.generate(ORIGIN)
    cosigner = Cosigner.generate("witness.test/w1")
    witness = Witness(cosigner, [log_key.verifier], WitnessState(tmp_path / "state.json"))
    return log_key, cosigner, witness, tmp_path


def test_cosigns_the_first_checkpoint_and_then_only_consistent_ones(world):
    log_key, cosigner, witness, tmp_path = world
    leaves = _leaves(40)
    first = _note(log_key, leaves[:10])
    got = witness.add_checkpoint(_body(0, [], first))
    assert got.status == 200 and got.body.startswith("\u2014 witness.test/w1 ")
    assert cosigner.verifier.verify(first + got.body) > 0
    # A consistent extension, with its proof.
    second = _note(log_key, leaves)
    assert witness.add_checkpoint(_body(10, consistency_proof(10, 40, leaves), second)).status == 200
    # The state survives a restart.
    again = Witness(cosigner, [log_key.verifier], WitnessState(tmp_path / "state.json"))
    assert again.latest(ORIGIN).body.startswith(second)


def test_refuses_a_rewritten_history(world):
    log_key, _, witness, _ = world
    leaves = _leaves(20)
    assert witness.add_checkpoint(_body(0, [], _note(log_key, leaves[:10]))).status == 200
    forged = leaves[:5] + _leaves(15, "forged")
    answer = witness.add_checkpoint(_body(10, consistency_proof(10, 20, forged), _note(log_key, forged)))
    assert answer.status == 422
    # The same size with another root is a conflict.
    assert witness.add_checkpoint(_body(10, [], _note(log_key, forged[:10]))).status == 409


def test_stale_old_size_is_a_conflict_naming_the_known_size(world):
    log_key, _, witness, _ = world
    leaves = _leaves(30)
    assert witness.add_checkpoint(_body(0, [], _note(log_key, leaves[:20]))).status == 200
    stale = witness.add_checkpoint(_body(0, [], _note(log_key, leaves)))
    assert (stale.status, stale.body, stale.content_type) == (409, "20\n", "text/x.tlog.size")
    # A smaller tree than the witness knows (a truncated log) cannot be cosigned.
    assert witness.add_checkpoint(_body(20, [], _note(log_key, leaves[:15]))).status == 400


def test_unknown_log_bad_signature_and_malformed_bodies(world):
    log_key, _, witness, _ = world
    other = CheckpointSigner.generate("other.example/log")
    leaves = _leaves(4)
    assert witness.add_checkpoint(_body(0, [], other.sign(Checkpoint("other.example/log", 4, Tree(leaves).root())
                                                          .text()))).status == 404
    impostor = CheckpointSigner.generate(ORIGIN)
    assert witness.add_checkpoint(_body(0, [], _note(impostor, leaves))).status == 403
    for body in (b"", b"old x\n\n", b"old 01\n\nx", b"\xff\xfe", b"old 0\nnot-base64!\n\n" + _note(log_key, leaves).encode()):
        assert witness.add_checkpoint(body).status == 400


def test_cosignature_keys_round_trip(tmp_path):
    from clearance.witness.cosign import write_witness_key

    signer = write_witness_key("witness.test/w2", tmp_path / "w.key")
    assert Cosigner.load(tmp_path / "w.key").verifier.vkey() == signer.verifier.vkey()
    v = CosignatureVerifier.load(str(tmp_path / "w.key.pub"))
    text = Checkpoint(ORIGIN, 1, b"\x01" * 32).text()
    note = CheckpointSigner.generate(ORIGIN).sign(text)
    assert v.verify(note + signer.cosign(text, 1700000000)) == 1700000000
    with pytest.raises(NoteError):
        v.verify(note + Cosigner.generate("witness.test/w2").cosign(text))

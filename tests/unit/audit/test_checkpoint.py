"""Signed notes and checkpoints: formats, key ids, signatures and key files."""

from __future__ import annotations

import base64
import hashlib
import stat

import pytest

from clearance.audit.checkpoint import (
    Checkpoint,
    CheckpointSigner,
    NoteError,
    NoteVerifier,
    load_verifier,
    parse_checkpoint,
    write_keypair,
)

# The example of golang.org/x/mod/sumdb/note's documentation: interoperability with Go's note package.
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_NOTE = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
    "\n"
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_verifies_the_go_note_example() -> None:
    v = NoteVerifier.parse(GO_VKEY)
    assert v.verify(GO_NOTE).startswith("If you think")
    with pytest.raises(NoteError):
        v.verify(GO_NOTE.replace("problem is", "problem was"))


def test_key_id_follows_the_spec() -> None:
    signer = CheckpointSigner.generate("example.com/log")
    pub = signer.verifier.public_key
    want = hashlib.sha256(b"example.com/log\n\x01" + pub).digest()[:4]
    assert signer.verifier.key_id == want
    name, hex_id, b64 = signer.verifier.vkey().split("+", 2)
    assert (name, hex_id) == ("example.com/log", want.hex())
    assert base64.b64decode(b64) == b"\x01" + pub


def test_checkpoint_sign_parse_verify_round_trip() -> None:
    signer = CheckpointSigner.generate("example.com/log")
    cp = Checkpoint("example.com/log", 42, hashlib.sha256(b"x").digest())
    note = signer.sign(cp.text())
    assert note.startswith("example.com/log\n42\n")
    assert "\n\n\u2014 example.com/log " in note
    assert parse_checkpoint(signer.verifier.verify(note)) == cp


def test_tampered_or_foreign_notes_are_refused() -> None:
    signer = CheckpointSigner.generate("example.com/log")
    other = CheckpointSigner.generate("example.com/log")
    note = signer.sign(Checkpoint("example.com/log", 7, b"\x01" * 32).text())
    with pytest.raises(NoteError):
        signer.verifier.verify(note.replace("\n7\n", "\n8\n"))
    with pytest.raises(NoteError):
        other.verifier.verify(note)
    with pytest.raises(NoteError):
        signer.verifier.verify(Checkpoint("example.com/log", 7, b"\x01" * 32).text())


@pytest.mark.parametrize(
    "text",
    ["o\n7\n", "o\n-1\nAAAA\n", "o\n07\n" + base64.b64encode(b"\0" * 32).decode() + "\n", "o\n7\nnot base64!\n",
     "o\n7\n" + base64.b64encode(b"short").decode() + "\n", "o\n7\n" + base64.b64encode(b"\0" * 32).decode()],
)
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(NoteError):
        parse_checkpoint(text)


def test_keypair_files(tmp_path) -> None:
    priv, pub = tmp_path / "k" / "audit.key", tmp_path / "k" / "audit.key.pub"
    signer = write_keypair("example.com/log", priv, pub)
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert priv.read_text().startswith("PRIVATE+KEY+example.com/log+")
    assert CheckpointSigner.load(priv).verifier.vkey() == signer.verifier.vkey()
    assert load_verifier(pub).vkey() == signer.verifier.vkey()
    assert load_verifier(signer.verifier.vkey()).key_id == signer.verifier.key_id
    with pytest.raises(NoteError):
        write_keypair("example.com/log", priv, pub)


@pytest.mark.parametrize("bad", ["", "name+zz", "name+00000000+AAAA", GO_VKEY.replace("c74f20a3", "00000000")])
def test_bad_verifier_keys_are_refused(bad: str) -> None:
    with pytest.raises(NoteError):
        NoteVerifier.parse(bad)

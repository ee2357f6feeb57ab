"""Checkpoints (C2SP tlog-checkpoint) signed as C2SP signed notes with Ed25519.

A checkpoint body is three lines: the log's origin, the tree size in
decimal, and the base64 root hash.  A signed note appends a blank line and
one signature line per signer: ``— <name> <base64(key id || signature)>``.
The key id is the first four bytes of SHA-256(name || 0x0A || 0x01 || public
key).  Keys are written in the formats of golang.org/x/mod/sumdb/note:

- verifier (public, publishable): ``<name>+<hex key id>+<base64(0x01 || public key)>``
- signer (private, mode 0600):    ``PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>``
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ALG_ED25519 = 0x01
SIG_PREFIX = "\u2014 "  # em dash and a space


class NoteError(Exception):
    """A signed note, checkpoint or key is malformed or its signature does not verify."""


def _check_name(name: str) -> str:
    if not name or any(c.isspace() for c in name) or "+" in name:
        raise NoteError(f"invalid key name {name!r}: it must be non-empty, without spaces or '+'")
    return name


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte signed-note key id of an Ed25519 public key."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


@dataclass(frozen=True)
class Checkpoint:
    """The body of a C2SP tlog checkpoint."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(), *self.extensions]
        return "\n".join(lines) + "\n"


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint body (the note text without signatures)."""
    if not text.endswith("\n"):
        raise NoteError("checkpoint does not end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3 or not lines[0]:
        raise NoteError("checkpoint needs an origin, a size and a root hash")
    origin, size_s, root_s, *ext = lines
    if not size_s.isdigit() or (size_s != "0" and size_s.startswith("0")):
        raise NoteError(f"checkpoint size {size_s!r} is not a decimal number")
    try:
        root = base64.b64decode(root_s, validate=True)
    except binascii.Error:
        raise NoteError("checkpoint root is not base64") from None
    if len(root) != 32:
        raise NoteError(f"checkpoint root has {len(root)} bytes, want 32")
    return Checkpoint(origin, int(size_s), root, tuple(ext))


@dataclass(frozen=True)
class Signature:
    name: str
    key_id: bytes
    signature: bytes


def split_note(note: str) -> tuple[str, list[Signature]]:
    """Split a signed note into its text and its signature lines."""
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise NoteError("not a signed note: no blank line before the signatures")
    text, sig_block = note[: cut + 1], note[cut + 2 :]
    sigs = []
    for line in sig_block[:-1].split("\n"):
        if not line.startswith(SIG_PREFIX):
            raise NoteError(f"malformed signature line {line!r}")
        parts = line[len(SIG_PREFIX) :].split(" ")
        if len(parts) != 2:
            raise NoteError(f"malformed signature line {line!r}")
        try:
            raw = base64.b64decode(parts[1], validate=True)
        except binascii.Error:
            raise NoteError(f"signature of {parts[0]!r} is not base64") from None
        if len(raw) < 5:
            raise NoteError(f"signature of {parts[0]!r} is too short")
        sigs.append(Signature(parts[0], raw[:4], raw[4:]))
    if not sigs:
        raise NoteError("signed note has no signatures")
    return text, sigs


class NoteVerifier:
    """Checks signed notes against one Ed25519 verifier key."""

    def __init__(self, name: str, public_key: bytes) -> None:
        self.name = _check_name(name)
        self.public_key = public_key
        self.key_id = key_id(name, public_key)
        self._key = Ed25519PublicKey.from_public_bytes(public_key)

    @classmethod
    def parse(cls, vkey: str) -> NoteVerifier:
        parts = vkey.strip().split("+", 2)  # base64 may itself contain '+'
        if len(parts) != 3:
            raise NoteError("a verifier key looks like <name>+<hex key id>+<base64 key>")
        name, hex_id, b64 = parts
        try:
            raw = base64.b64decode(b64, validate=True)
        except binascii.Error:
            raise NoteError("verifier key is not base64") from None
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise NoteError("verifier key is not an Ed25519 key")
        v = cls(name, raw[1:])
        if v.key_id.hex() != hex_id.lower():
            raise NoteError("verifier key id does not match its name and key")
        return v

    def vkey(self) -> str:
        b64 = base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{b64}"

    def verify(self, note: str) -> str:
        """Return the note's text if one of its signatures is ours and valid."""
        text, sigs = split_note(note)
        mine = [s for s in sigs if s.name == self.name and s.key_id == self.key_id]
        if not mine:
            raise NoteError(f"note is not signed by {self.name} ({self.key_id.hex()})")
        for s in mine:
            try:
                self._key.verify(s.signature, text.encode())
                return text
            except InvalidSignature:
                continue
        raise NoteError(f"signature by {self.name} does not verify")


class CheckpointSigner:
    """Signs note texts with one Ed25519 key."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self.name = _check_name(name)
        self._key = private_key
        pub = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.verifier = NoteVerifier(name, pub)

    @classmethod
    def generate(cls, name: str) -> CheckpointSigner:
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def parse(cls, skey: str) -> CheckpointSigner:
        skey = skey.strip()
        parts = skey[len("PRIVATE+KEY+") :].split("+", 2)
        if not skey.startswith("PRIVATE+KEY+") or len(parts) != 3:
            raise NoteError("a signing key looks like PRIVATE+KEY+<name>+<hex key id>+<base64 key>")
        name, hex_id, b64 = parts
        try:
            raw = base64.b64decode(b64, validate=True)
        except binascii.Error:
            raise NoteError("signing key is not base64") from None
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise NoteError("signing key is not an Ed25519 key")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if signer.verifier.key_id.hex() != hex_id.lower():
            raise NoteError("signing key id does not match its name and key")
        return signer

    @classmethod
    def load(cls, path: str | Path) -> CheckpointSigner:
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise NoteError(f"cannot read signing key {path}: {e.strerror or e}") from None
        return cls.parse(text)

    def skey(self) -> str:
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        seed = self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        b64 = base64.b64encode(bytes([ALG_ED25519]) + seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier.key_id.hex()}+{b64}"

    def sign(self, text: str) -> str:
        """The signed note of ``text`` (which must end with a newline)."""
        if not text.endswith("\n") or "\n\n" in text:
            raise NoteError("note text must end with one newline and contain no blank line")
        sig = self._key.sign(text.encode())
        b64 = base64.b64encode(self.verifier.key_id + sig).decode()
        return f"{text}\n{SIG_PREFIX}{self.name} {b64}\n"


def load_verifier(value: str | Path) -> NoteVerifier:
    """A verifier from a key string or a file holding one (a signing key file works too)."""
    s = str(value)
    p = Path(s)
    if p.is_file() or not (s.count("+") >= 2 and len(s) > 40):
        try:
            s = p.read_text()
        except OSError as e:
            raise NoteError(f"cannot read verifier key {value}: {e.strerror or e}") from None
    s = s.strip()
    if s.startswith("PRIVATE+KEY+"):
        return CheckpointSigner.parse(s).verifier
    return NoteVerifier.parse(s)


def write_keypair(name: str, private_path: Path, public_path: Path, overwrite: bool = False) -> CheckpointSigner:
    """Generate a key; write the signing key (mode 0600) and the verifier key."""
    if private_path.exists() and not overwrite:
        raise NoteError(f"{private_path} already exists; refusing to overwrite a signing key")
    signer = CheckpointSigner.generate(name)
    private_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = private_path.with_name(private_path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(signer.skey() + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, private_path)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.write_text(signer.verifier.vkey() + "\n")
    return signer

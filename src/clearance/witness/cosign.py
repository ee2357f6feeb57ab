"""Ed25519 cosignatures (C2SP tlog-cosignature, ``cosignature/v1``).

A cosignature is a signed-note signature line by a witness:
``— <name> base64(key id || u64 timestamp || Ed25519 signature)``.  The key id
is the first four bytes of SHA-256(name || 0x0A || 0x04 || public key), and the
signed message is ``cosignature/v1\\ntime <timestamp>\\n`` followed by the
checkpoint's text.  Keys are written like the log's own (clearance.audit.checkpoint)
with algorithm byte 0x04:

- verifier: ``<name>+<hex key id>+<base64(0x04 || public key)>``
- signer (mode 0600): ``PRIVATE+KEY+<name>+<hex key id>+<base64(0x04 || seed)>``
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import struct
import time
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from clearance.audit.checkpoint import SIG_PREFIX, NoteError, split_note

ALG_COSIGNATURE = 0x04


def cosigner_key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_COSIGNATURE]) + public_key).digest()[:4]


def _message(text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n".encode() + text.encode()


def _decode(b64: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(b64, validate=True)
    except binascii.Error:
        raise NoteError(f"{what} is not base64") from None
    if len(raw) != 33 or raw[0] != ALG_COSIGNATURE:
        raise NoteError(f"{what} is not an Ed25519 cosignature key")
    return raw[1:]


class CosignatureVerifier:
    """Checks a witness's cosignatures on checkpoints."""

    def __init__(self, name: str, public_key: bytes) -> None:
        if not name or any(c.isspace() for c in name) or "+" in name:
            raise NoteError(f"invalid witness name {name!r}")
        self.name = name
        self.public_key = public_key
        self.key_id = cosigner_key_id(name, public_key)
        self._key = Ed25519PublicKey.from_public_bytes(public_key)

    @classmethod
    def parse(cls, vkey: str) -> CosignatureVerifier:
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise NoteError("a witness key looks like <name>+<hex key id>+<base64 key>")
        v = cls(parts[0], _decode(parts[2], "witness key"))
        if v.key_id.hex() != parts[1].lower():
            raise NoteError("witness key id does not match its name and key")
        return v

    @classmethod
    def load(cls, value: str) -> CosignatureVerifier:
        """From a key string, or a file holding one."""
        p = Path(value)
        return cls.parse(p.read_text() if p.is_file() else value)

    def vkey(self) -> str:
        b64 = base64.b64encode(bytes([ALG_COSIGNATURE]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{b64}"

    def verify(self, note: str) -> int:
        """The timestamp of this witness's valid cosignature on the note; raises NoteError if none."""
        text, sigs = split_note(note)
        for s in sigs:
            if s.name != self.name or s.key_id != self.key_id or len(s.signature) != 72:
                continue
            (timestamp,) = struct.unpack(">Q", s.signature[:8])
            try:
                self._key.verify(s.signature[8:], _message(text, timestamp))
                return timestamp
            except InvalidSignature:
                continue
        raise NoteError(f"the checkpoint carries no valid cosignature of witness {self.name}")


class Cosigner:
    """A witness's signing key."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        pub = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.verifier = CosignatureVerifier(name, pub)
        self.name = name

    @classmethod
    def generate(cls, name: str) -> Cosigner:
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: str | Path) -> Cosigner:
        skey = Path(path).read_text().strip()
        parts = skey[len("PRIVATE+KEY+"):].split("+", 2)
        if not skey.startswith("PRIVATE+KEY+") or len(parts) != 3:
            raise NoteError("a witness signing key looks like PRIVATE+KEY+<name>+<hex key id>+<base64 key>")
        signer = cls(parts[0], Ed25519PrivateKey.from_private_bytes(_decode(parts[2], "witness signing key")))
        if signer.verifier.key_id.hex() != parts[1].lower():
            raise NoteError("witness signing key id does not match its name and key")
        return signer

    def skey(self) -> str:
        seed = self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        b64 = base64.b64encode(bytes([ALG_COSIGNATURE]) + seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier.key_id.hex()}+{b64}"

    def cosign(self, text: str, timestamp: int | None = None) -> str:
        """The cosignature line (ending with a newline) of a checkpoint's text."""
        ts = int(time.time()) if timestamp is None else timestamp
        sig = self._key.sign(_message(text, ts))
        b64 = base64.b64encode(self.verifier.key_id + struct.pack(">Q", ts) + sig).decode()
        return f"{SIG_PREFIX}{self.name} {b64}\n"


def write_witness_key(name: str, path: Path, overwrite: bool = False) -> Cosigner:
    """Generate a witness key: the signing key at ``path`` (mode 0600), the verifier key at ``path.pub``."""
    if path.exists() and not overwrite:
        raise NoteError(f"{path} already exists; refusing to overwrite a signing key")
    signer = Cosigner.generate(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(signer.skey() + "\n")
    Path(str(path) + ".pub").write_text(signer.verifier.vkey() + "\n")
    return signer

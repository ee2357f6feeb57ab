"""Check a Clearance audit bundle offline: python standalone_verify.py BUNDLE --key VERIFIER_KEY

Self-contained on purpose (standard library plus ``cryptography``), so an
auditor can read it in one sitting and run it without installing Clearance.
It checks that the bundle's newest checkpoint is signed by the given key,
that every older checkpoint is signed and consistent with it (RFC 9162
consistency proofs), and that every entry is included in it (inclusion
proofs).  Exit status 0 when everything holds, 1 otherwise.

The key is given as ``<name>+<hex key id>+<base64(0x01 || Ed25519 key)>``
or as a file holding that line.  Never trust the key inside the bundle:
get the operator's published key.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class Invalid(Exception):
    pass


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _decomp(index: int, size: int) -> tuple[int, int]:
    inner = (index ^ (size - 1)).bit_length()
    return inner, bin(index >> inner).count("1")


def verify_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> None:
    if not 0 <= index < size:
        raise Invalid(f"index {index} outside tree of size {size}")
    inner, border = _decomp(index, size)
    if len(proof) != inner + border:
        raise Invalid("inclusion proof has the wrong length")
    h = leaf
    for i, p in enumerate(proof[:inner]):
        h = _node(h, p) if (index >> i) & 1 == 0 else _node(p, h)
    for p in proof[inner:]:
        h = _node(p, h)
    if h != root:
        raise Invalid("inclusion proof does not lead to the checkpoint root")


def verify_consistency(size1: int, size2: int, proof: list[bytes], root1: bytes, root2: bytes) -> None:
    if not 0 < size1 <= size2:
        raise Invalid(f"no consistency between sizes {size1} and {size2}")
    if size1 == size2:
        if proof or root1 != root2:
            raise Invalid("equal sizes need equal roots and an empty proof")
        return
    inner, border = _decomp(size1 - 1, size2)
    shift = (size1 & -size1).bit_length() - 1
    inner -= shift
    seed, start = (root1, 0) if size1 == 1 << shift else (proof[0] if proof else b"", 1)
    if len(proof) != start + inner + border:
        raise Invalid("consistency proof has the wrong length")
    rest, mask = proof[start:], (size1 - 1) >> shift
    h1 = h2 = seed
    for i, p in enumerate(rest[:inner]):
        if (mask >> i) & 1:
            h1, h2 = _node(p, h1), _node(p, h2)
        else:
            h2 = _node(h2, p)
    for p in rest[inner:]:
        h1, h2 = _node(p, h1), _node(p, h2)
    if h1 != root1 or h2 != root2:
        raise Invalid("consistency proof does not match the roots")


def parse_key(text: str) -> tuple[str, bytes, Ed25519PublicKey]:
    parts = text.strip().split("+", 2)
    if len(parts) != 3:
        raise Invalid("verifier key must look like <name>+<hex id>+<base64 key>")
    name, hex_id, b64 = parts
    raw = base64.b64decode(b64, validate=True)
    if len(raw) != 33 or raw[0] != 1:
        raise Invalid("verifier key is not an Ed25519 key")
    kid = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    if kid.hex() != hex_id.lower():
        raise Invalid("verifier key id does not match the key")
    return name, kid, Ed25519PublicKey.from_public_bytes(raw[1:])


def open_checkpoint(note: str, key: tuple[str, bytes, Ed25519PublicKey]) -> tuple[str, int, bytes]:
    """Check the note's signature; return the checkpoint's origin, size and root."""
    name, kid, pub = key
    cut = note.rfind("\n\n")
    if cut < 0:
        raise Invalid("checkpoint is not a signed note")
    text = note[: cut + 1]
    for line in note[cut + 2 :].splitlines():
        if line.startswith("\u2014 " + name + " "):
            sig = base64.b64decode(line.rsplit(" ", 1)[1], validate=True)
            if sig[:4] != kid:
                continue
            try:
                pub.verify(sig[4:], text.encode())
            except InvalidSignature:
                raise Invalid("checkpoint signature does not verify") from None
            lines = text.split("\n")
            root = base64.b64decode(lines[2], validate=True)
            if len(root) != 32 or not lines[1].isdigit():
                raise Invalid("malformed checkpoint")
            return lines[0], int(lines[1]), root
    raise Invalid(f"checkpoint is not signed by {name}")


def check_bundle(bundle: dict, key_text: str) -> str:
    """Raise ``Invalid`` unless the whole bundle holds; return a one-line summary."""
    key = parse_key(key_text)
    b64 = base64.b64decode
    origin, size, root = open_checkpoint(bundle["checkpoint"], key)
    for old in bundle.get("older_checkpoints", []):
        o, s, r = open_checkpoint(old["checkpoint"], key)
        if o != origin:
            raise Invalid(f"checkpoint of size {s} is for another log ({o})")
        try:
            verify_consistency(s, size, [b64(h) for h in old["consistency"]], r, root)
        except Invalid as e:
            raise Invalid(f"checkpoint of size {s}: {e}") from None
    for e in bundle["entries"]:
        try:
            verify_inclusion(_leaf(e["entry"].encode()), e["index"], size, [b64(h) for h in e["proof"]], root)
        except Invalid as err:
            raise Invalid(f"entry {e['index']}: {err}") from None
    return (
        f"OK: {len(bundle['entries'])} entries included in {origin} at size {size}; "
        f"{len(bundle.get('older_checkpoints', []))} older checkpoints consistent"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Check a Clearance audit bundle offline.")
    ap.add_argument("bundle", help="the JSON bundle written by `clearance audit export`")
    ap.add_argument("--key", required=True, help="the operator's verifier key, or a file holding it")
    args = ap.parse_args(argv)
    key_text = args.key
    if Path(key_text).is_file():
        key_text = Path(key_text).read_text()
    try:
        bundle = json.loads(Path(args.bundle).read_text())
        print(check_bundle(bundle, key_text))
        return 0
    except Invalid as e:
        print(f"FAIL: {e}", file=sys.stderr)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
        print(f"FAIL: unreadable bundle or key: {type(e).__name__}: {e}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

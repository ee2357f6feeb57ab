"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and proof verification.

Pure functions over bytes, standard library only:

- ``leaf_hash(data)`` is SHA-256(0x00 || data), ``node_hash(l, r)`` is
  SHA-256(0x01 || l || r), and ``root_hash`` is the Merkle Tree Hash of a
  list of leaf hashes (the empty tree hashes to SHA-256 of nothing).
- ``inclusion_proof`` and ``consistency_proof`` build proofs; they take the
  tree as a list of leaf hashes, a ``Tree``, or any ``subtree(start, end)``
  callable returning the Merkle Tree Hash of leaves ``[start, end)``.
- ``verify_inclusion`` and ``verify_consistency`` return None when a proof
  holds and raise ``ProofError`` otherwise.  They follow
  transparency-dev/merkle and pass its shared test vectors.
- ``Frontier`` is the compact range of a growing tree (one hash per set bit
  of its size): append leaves one at a time, read the root at any moment.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

_sha256 = hashlib.sha256
EMPTY_ROOT = _sha256(b"").digest()
HASH_SIZE = 32

SubtreeFn = Callable[[int, int], bytes]


class ProofError(Exception):
    """A Merkle proof, or the data it is checked against, does not hold."""


def leaf_hash(data: bytes) -> bytes:
    """The RFC 6962 hash of one leaf: SHA-256(0x00 || data)."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 6962 hash of an interior node: SHA-256(0x01 || left || right)."""
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n`` >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class Frontier:
    """The compact range [0, size) of a tree: the roots of its perfect subtrees.

    ``hashes[i]`` covers a perfect subtree whose size is the i-th set bit of
    ``size`` counted from the most significant one.
    """

    __slots__ = ("size", "hashes")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if len(hashes) != bin(size).count("1"):
            raise ValueError(f"a frontier of size {size} needs {bin(size).count('1')} hashes, got {len(hashes)}")
        self.size = size
        self.hashes = list(hashes)

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash at index ``size``."""
        hashes = self.hashes
        s = self.size
        h = leaf
        while s & 1:
            h = _sha256(b"\x01" + hashes.pop() + h).digest()
            s >>= 1
        hashes.append(h)
        self.size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        """The Merkle Tree Hash of the leaves [0, size)."""
        if not self.hashes:
            return EMPTY_ROOT
        r = self.hashes[-1]
        for h in reversed(self.hashes[:-1]):
            r = _sha256(b"\x01" + h + r).digest()
        return r

    def pieces(self) -> list[tuple[int, int, bytes]]:
        """``(start, end, hash)`` of each perfect subtree, left to right."""
        out = []
        start = 0
        bits = [b for b in range(self.size.bit_length() - 1, -1, -1) if self.size >> b & 1]
        for bit, h in zip(bits, self.hashes):
            out.append((start, start + (1 << bit), h))
            start += 1 << bit
        return out

    def to_bytes(self) -> bytes:
        return b"".join(self.hashes)

    @classmethod
    def from_bytes(cls, size: int, data: bytes) -> Frontier:
        if len(data) % HASH_SIZE:
            raise ValueError("frontier bytes are not a whole number of hashes")
        return cls(size, [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)])

    def copy(self) -> Frontier:
        return Frontier(self.size, list(self.hashes))


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash of a list of leaf hashes."""
    f = Frontier()
    f.extend(leaf_hashes)
    return f.root()


class Tree:
    """Every perfect subtree hash of a tree, so that any proof costs O(log² n).

    ``leaves`` are the leaf hashes from index ``offset`` on.  When the first
    ``offset`` leaves have been pruned, ``prefix`` is the ``Frontier`` of
    [0, offset): its perfect subtrees stand in for the pruned leaves.
    """

    def __init__(self, leaves: Sequence[bytes], offset: int = 0, prefix: Frontier | None = None) -> None:
        if offset and (prefix is None or prefix.size != offset):
            raise ValueError("a tree with pruned leaves needs the frontier of the pruned prefix")
        self.size = offset + len(leaves)
        level: list[bytes | None] = [None] * offset + list(leaves)
        known: dict[tuple[int, int], bytes] = {}
        if prefix is not None:
            for start, end, h in prefix.pieces():
                known[((end - start).bit_length() - 1, start // (end - start))] = h
        for (lvl, i), h in known.items():
            if lvl == 0:
                level[i] = h
        self.levels: list[list[bytes | None]] = [level]
        depth = 0
        while len(level) > 1:
            depth += 1
            nxt: list[bytes | None] = []
            for i in range(len(level) // 2):
                a, b = level[2 * i], level[2 * i + 1]
                if a is not None and b is not None:
                    nxt.append(_sha256(b"\x01" + a + b).digest())
                else:
                    nxt.append(known.get((depth, i)))
            level = nxt
            self.levels.append(level)

    def subtree(self, start: int, end: int) -> bytes:
        """The Merkle Tree Hash of leaves [start, end)."""
        n = end - start
        if n <= 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and start % n == 0:
            lvl = n.bit_length() - 1
            h = self.levels[lvl][start >> lvl] if lvl < len(self.levels) else None
            if h is None:
                raise ProofError(f"the hash of leaves [{start}, {end}) is no longer available (pruned)")
            return h
        k = _split(n)
        return node_hash(self.subtree(start, start + k), self.subtree(start + k, end))

    def root(self) -> bytes:
        return self.subtree(0, self.size)

    def leaf(self, index: int) -> bytes:
        return self.subtree(index, index + 1)


def _subtree_fn(tree: Sequence[bytes] | Tree | SubtreeFn) -> SubtreeFn:
    if isinstance(tree, Tree):
        return tree.subtree
    if callable(tree):
        return tree
    leaves = tree
    return lambda start, end: root_hash(leaves[start:end])


def inclusion_proof(index: int, size: int, tree: Sequence[bytes] | Tree | SubtreeFn) -> list[bytes]:
    """The RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
    if not 0 <= index < size:
        raise ValueError(f"index {index} is outside a tree of size {size}")
    mth = _subtree_fn(tree)
    proof: list[bytes] = []
    start, end, m = 0, size, index
    # Walk from the root down, collecting siblings; reverse for leaf-to-root order.
    while end - start > 1:
        k = _split(end - start)
        if m < k:
            proof.append(mth(start + k, end))
            end = start + k
        else:
            proof.append(mth(start, start + k))
            start += k
            m -= k
    proof.reverse()
    return proof


def consistency_proof(size1: int, size2: int, tree: Sequence[bytes] | Tree | SubtreeFn) -> list[bytes]:
    """The RFC 9162 consistency proof between the trees of ``size1`` and ``size2`` leaves."""
    if not 0 < size1 <= size2:
        raise ValueError(f"no consistency proof from size {size1} to size {size2}")
    mth = _subtree_fn(tree)
    proof: list[bytes] = []
    # SUBPROOF(m, D[start:end], b), iteratively: siblings gathered root-down.
    start, end, m, complete = 0, size2, size1, True
    while True:
        n = end - start
        if m == n:
            if not complete:
                proof.append(mth(start, end))
            break
        k = _split(n)
        if m <= k:
            proof.append(mth(start + k, end))
            end = start + k
        else:
            proof.append(mth(start, start + k))
            start += k
            m -= k
            complete = False
    proof.reverse()
    return proof


def _decomp_incl_proof(index: int, size: int) -> tuple[int, int]:
    inner = (index ^ (size - 1)).bit_length()
    border = bin(index >> inner).count("1")
    return inner, border


def _chain_inner(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        if (index >> i) & 1 == 0:
            seed = node_hash(seed, h)
        else:
            seed = node_hash(h, seed)
    return seed


def _chain_inner_right(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        if (index >> i) & 1 == 1:
            seed = node_hash(h, seed)
    return seed


def _chain_border_right(seed: bytes, proof: Sequence[bytes]) -> bytes:
    for h in proof:
        seed = node_hash(h, seed)
    return seed


def _match(calculated: bytes, expected: bytes, what: str = "root") -> None:
    if calculated != expected:
        raise ProofError(f"calculated {what} {calculated.hex()} does not match expected {bytes(expected).hex()}")


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that an inclusion proof leads to; raises ``ProofError`` if malformed."""
    if index < 0 or size < 0 or index >= size:
        raise ProofError(f"index {index} is beyond a tree of size {size}")
    if len(leaf) != HASH_SIZE:
        raise ProofError(f"leaf hash has {len(leaf)} bytes, want {HASH_SIZE}")
    if any(len(h) != HASH_SIZE for h in proof):
        raise ProofError("a proof hash does not have 32 bytes")
    inner, border = _decomp_incl_proof(index, size)
    if len(proof) != inner + border:
        raise ProofError(f"wrong proof size {len(proof)}, want {inner + border}")
    res = _chain_inner(leaf, proof[:inner], index)
    return _chain_border_right(res, proof[inner:])


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves with ``root``."""
    _match(root_from_inclusion_proof(leaf_hash, index, size, proof), root)


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Check that the tree of ``size1`` leaves with ``root1`` is a prefix of the one with ``root2``.

    A proof from the empty tree proves nothing and is refused.
    """
    if size1 < 0 or size2 < size1:
        raise ProofError(f"size2 ({size2}) < size1 ({size1})")
    if size1 == 0:
        raise ProofError("a consistency proof from the empty tree is meaningless")
    if size1 == size2:
        if proof:
            raise ProofError("size1 == size2 but the proof is not empty")
        _match(root1, root2, "root2")
        return
    if not proof:
        raise ProofError("empty consistency proof")
    if any(len(h) != HASH_SIZE for h in proof):
        raise ProofError("a proof hash does not have 32 bytes")
    inner, border = _decomp_incl_proof(size1 - 1, size2)
    shift = (size1 & -size1).bit_length() - 1
    inner -= shift
    if size1 == 1 << shift:
        seed, start = root1, 0
    else:
        seed, start = proof[0], 1
    if len(proof) != start + inner + border:
        raise ProofError(f"wrong proof size {len(proof)}, want {start + inner + border}")
    rest = proof[start:]
    mask = (size1 - 1) >> shift
    hash1 = _chain_inner_right(seed, rest[:inner], mask)
    hash1 = _chain_border_right(hash1, rest[inner:])
    _match(hash1, root1, "root1")
    hash2 = _chain_inner(seed, rest[:inner], mask)
    hash2 = _chain_border_right(hash2, rest[inner:])
    _match(hash2, root2, "root2")

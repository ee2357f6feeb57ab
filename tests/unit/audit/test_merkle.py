"""Proof building and verification round trips, checked against the RFC 6962 definition."""

from __future__ import annotations

import hashlib

import pytest

from clearance.audit import ProofError
from clearance.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    Tree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)


def _mth(leaves: list[bytes]) -> bytes:
    """The Merkle Tree Hash written exactly as RFC 6962 section 2.1 defines it."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:])).digest()


LEAVES = [leaf_hash(f"entry {i}".encode()) for i in range(70)]


def test_leaf_and_node_hash_domain_separation() -> None:
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()
    assert root_hash([]) == EMPTY_ROOT


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 8, 9, 16, 17, 31, 70])
def test_root_matches_definition(n: int) -> None:
    assert root_hash(LEAVES[:n]) == _mth(LEAVES[:n])
    assert Tree(LEAVES[:n]).root() == _mth(LEAVES[:n])


@pytest.mark.parametrize("n", [1, 2, 3, 6, 8, 13, 33])
def test_every_inclusion_proof_verifies(n: int) -> None:
    root = _mth(LEAVES[:n])
    tree = Tree(LEAVES[:n])
    for i in range(n):
        proof = inclusion_proof(i, n, LEAVES[:n])
        assert proof == inclusion_proof(i, n, tree)
        verify_inclusion(LEAVES[i], i, n, proof, root)
        with pytest.raises(ProofError):
            verify_inclusion(LEAVES[(i + 1) % 70], i, n, proof, root)


@pytest.mark.parametrize("n", [2, 3, 7, 8, 9, 20])
def test_every_consistency_proof_verifies(n: int) -> None:
    tree = Tree(LEAVES[:n])
    for m in range(1, n + 1):
        proof = consistency_proof(m, n, tree)
        verify_consistency(m, n, proof, _mth(LEAVES[:m]), _mth(LEAVES[:n]))
        if m < n:
            with pytest.raises(ProofError):
                verify_consistency(m, n, proof, _mth(LEAVES[1 : m + 1]), _mth(LEAVES[:n]))


def test_frontier_round_trip_and_pieces() -> None:
    f = Frontier()
    for i, h in enumerate(LEAVES[:13]):
        f.append(h)
        assert f.root() == _mth(LEAVES[: i + 1])
    g = Frontier.from_bytes(13, f.to_bytes())
    assert g.root() == f.root()
    assert [(s, e) for s, e, _ in f.pieces()] == [(0, 8), (8, 12), (12, 13)]
    with pytest.raises(ValueError):
        Frontier(13, f.hashes[:2])


@pytest.mark.parametrize("pruned", [1, 5, 8, 13, 32])
def test_pruned_tree_still_proves_the_rest(pruned: int) -> None:
    n = 45
    prefix = Frontier()
    prefix.extend(LEAVES[:pruned])
    tree = Tree(LEAVES[pruned:n], offset=pruned, prefix=prefix)
    root = _mth(LEAVES[:n])
    assert tree.root() == root
    for i in range(pruned, n):
        verify_inclusion(LEAVES[i], i, n, inclusion_proof(i, n, tree), root)
    for m in range(pruned, n + 1):
        verify_consistency(m, n, consistency_proof(m, n, tree), _mth(LEAVES[:m]), root)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        inclusion_proof(3, 3, LEAVES[:3])
    with pytest.raises(ValueError):
        consistency_proof(0, 3, LEAVES[:3])
    with pytest.raises(ProofError):
        verify_inclusion(LEAVES[0], 0, 2, [b"short"], _mth(LEAVES[:2]))

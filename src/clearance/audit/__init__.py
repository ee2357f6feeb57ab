"""Audit: a tamper-evident Merkle log of every decision.

``merkle`` holds the pure tree maths, ``checkpoint`` the signed checkpoints,
``log.AuditLog`` the append path the gateway calls, ``verify`` the full
check behind ``clearance audit verify``, ``content`` the optional encrypted
prompts and completions kept next to the entries.
"""

from clearance.audit.merkle import ProofError

__all__ = ["ProofError"]

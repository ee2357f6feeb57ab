"""Audit: a tamper-evident Merkle log of every decision."""

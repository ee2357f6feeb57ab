"""Configuration of the audit stage: the `audit:` section of clearance.yaml."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class AuditSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    # The log's name: the first line of every checkpoint and the signing key's name.
    origin: str = "clearance.local/audit"
    # The Ed25519 signing key written by `clearance audit keygen`, relative to the
    # config file.  Without it checkpoints are recorded unsigned.
    signing_key: str | None = None
    # The publishable verifier key (``<name>+<id>+<key>``), a path to it; used by
    # `clearance audit verify` when the signing key is not at hand.
    verifier_key: str | None = None
    checkpoint_interval_seconds: float = Field(default=10.0, gt=0)
    # Entries older than this are pruned (their subtree hashes are kept); None keeps all.
    retention_days: float | None = Field(default=None, gt=0)
    # Reserved: storing prompts and completions encrypted is not implemented yet.
    store_content: bool = False
    batch_max_size: int = Field(default=1000, ge=1)
    # How long the writer waits for more entries before committing a batch.
    batch_max_latency_ms: float = Field(default=0.0, ge=0)

    @field_validator("origin")
    @classmethod
    def _origin(cls, v: str) -> str:
        if not v or any(c.isspace() for c in v) or "+" in v:
            raise ValueError("origin must be non-empty, without spaces or '+'")
        return v

    @field_validator("store_content")
    @classmethod
    def _no_content(cls, v: bool) -> bool:
        if v:
            raise ValueError("store_content is not supported yet; prompts and completions are kept as SHA-256 only")
        return v

"""Configuration of the audit stage: the `audit:` section of clearance.yaml."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class WitnessSettings(BaseModel):
    """A C2SP tlog-witness that cosigns the log's checkpoints (see `clearance witness serve`)."""

    model_config = ConfigDict(extra="forbid")

    url: str  # the witness's submission prefix: <url>/add-checkpoint
    key: str  # its verifier key (<name>+<id>+<key>), or a file holding it, relative to the config file


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
    # Also write every checkpoint as a C2SP tlog-checkpoint file to this folder (relative to the
    # config file), for auditors to mirror: DIR/checkpoint (the newest), DIR/checkpoints/<size>.
    checkpoint_dir: str | None = None
    # Witnesses each new checkpoint is sent to, with a consistency proof; their cosignatures are
    # appended to the stored checkpoint.
    witnesses: list[WitnessSettings] = Field(default_factory=list)
    # Entries older than this are pruned (their subtree hashes are kept); None keeps all.
    retention_days: float | None = Field(default=None, gt=0)
    # Also keep each prompt and completion, encrypted (AES-256-GCM) with the content key below;
    # off: only their SHA-256 digests are recorded.  See clearance.audit.content.
    store_content: bool = False
    # Where the content key (base64, 32 bytes; `clearance audit content-keygen`) is read from:
    # an environment variable's name, or a file relative to the config file.  Exactly one when
    # store_content is on; either may stay set after turning it off, to read stored content.
    content_key_env: str | None = None
    content_key_file: str | None = None
    batch_max_size: int = Field(default=1000, ge=1)
    # How long the writer waits for more entries before committing a batch.
    batch_max_latency_ms: float = Field(default=0.0, ge=0)
    # SQLite only: "full" waits for the disk (fdatasync) before an entry counts as committed, so a
    # released answer's entry survives a power loss; "normal" (WAL) survives a crash of the gateway
    # but may lose the newest entries on a power loss or OS crash.  Checkpoints always use "full".
    sqlite_synchronous: Literal["full", "normal"] = "full"
    # SQLite only: where the statements of entries submitted by the gateway's requests run.
    # "event_loop": on the loop itself, which never waits for a lock (a locked database is retried
    # from a timer), while a thread of its own flushes the WAL to disk; "writer_thread": everything
    # on the writer thread (as PostgreSQL always does).  Both give the same durability.
    sqlite_commit_on: Literal["event_loop", "writer_thread"] = "event_loop"
    # What a served request's answer waits for.  "decision": its decision entry (who, which model,
    # the policy's reasons, the guard's scores, the prompt's digest) is queued when the request is
    # admitted and committed while the upstream works; the answer is released once that entry is
    # committed, and the completion entry (backend, fallbacks, usage, the answer's digest) follows
    # within completion_max_delay_ms.  "completion": one entry holding both is committed before a
    # non-streaming answer is released (a stream's decision entry, naming its backend, before its
    # first byte), at the cost of one more commit's wait per request.
    answer_waits_for: Literal["decision", "completion"] = "decision"
    # A completion entry nobody waits for is committed with the next entry someone waits for, or
    # about this long after it was set aside, whichever is first; 0 commits it at once.
    completion_max_delay_ms: float = Field(default=20.0, ge=0, le=10_000)
    # Requests refused before a policy decision (400, 401, 404, 413) are recorded as ``refused``
    # entries, at most this many per source (peer address) per minute and worker; the rest as
    # one counted summary entry per source and minute.
    refused_per_source_per_minute: int = Field(default=60, ge=0)

    @field_validator("origin")
    @classmethod
    def _origin(cls, v: str) -> str:
        if not v or any(c.isspace() for c in v) or "+" in v:
            raise ValueError("origin must be non-empty, without spaces or '+'")
        return v

    @model_validator(mode="after")
    def _content_key(self) -> AuditSettings:
        # Only checked when neither key setting is given: a validation error echoes the section,
        # and a key pasted into content_key_env by mistake must not reach a log.  The key
        # settings themselves are checked when the key is loaded (clearance.audit.content).
        if self.store_content and not (self.content_key_env or self.content_key_file):
            raise ValueError(
                "audit.store_content needs a key: set audit.content_key_env (an environment variable holding "
                "a base64 32-byte key) or audit.content_key_file; make one with `clearance audit content-keygen`"
            )
        return self

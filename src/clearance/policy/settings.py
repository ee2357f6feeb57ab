"""Configuration of the policy stage: the `policy:` section of clearance.yaml."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

BuiltinPolicy = Literal["guard", "approval"]


class PolicySettings(BaseModel):
    """Where the base policies come from and how decisions are cached.

    ``files`` are Cedar policy files reviewed like code, relative to the config
    file.  ``builtin`` names the policy files shipped with Clearance that are
    always loaded: ``guard`` (refuse prompts the guard flagged) and
    ``approval`` (approval-required models and the approval template).  Drop
    ``guard`` from the list to supply your own thresholds in a file.
    ``invariants`` names the assertions every change must keep (``check.py``).
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    files: list[str] = Field(default_factory=list)
    builtin: list[BuiltinPolicy] = Field(default_factory=lambda: ["guard", "approval"])
    # A YAML file of policy invariants (see docs/policy.md#invariants), relative to the config file.
    # When set, every directive, grant and approval change is checked against it before it is
    # committed, and refused if it would break one (unless overridden, which is recorded).
    invariants: str | None = None
    # Decisions cached per compiled snapshot (0 disables the cache).
    decision_cache_size: int = Field(default=100_000, ge=0)

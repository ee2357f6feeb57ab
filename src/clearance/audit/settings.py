"""Configuration of the audit stage: the `audit:` section of clearance.yaml."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class AuditSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True

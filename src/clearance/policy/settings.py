"""Configuration of the policy stage: the `policy:` section of clearance.yaml."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class PolicySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True

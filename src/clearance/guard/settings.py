"""Configuration of the guard stage: the `guard:` section of clearance.yaml."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class GuardSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True

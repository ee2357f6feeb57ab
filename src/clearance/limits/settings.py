"""The ``limits`` section of the config: where counters live and what tokens cost."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Price(BaseModel):
    """US dollars per million tokens."""

    model_config = ConfigDict(extra="forbid")
    input_per_mtok: float = Field(0.0, ge=0)
    output_per_mtok: float = Field(0.0, ge=0)


class LimitsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Counters shared by every replica; without it they live in each process (one replica).
    redis_url: str | None = None
    # How long a counter call may take before the limit's on_store_error applies.
    timeout_ms: float = Field(250.0, gt=0)
    # Connections to Redis per worker process.
    max_connections: int = Field(64, ge=1)
    key_prefix: str = "clearance:limits:"
    # Per model name: what its tokens cost (spend limits need it).
    prices: dict[str, Price] = Field(default_factory=dict)

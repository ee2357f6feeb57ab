"""Configuration of the web console: the `console:` section of clearance.yaml."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ConsoleSettings(BaseModel):
    """The console at ``/console``, served by the gateway process itself; off unless ``enabled``.

    Administrators sign in with their token (``clra_...``) and get a
    server-side session that ends after ``idle_minutes`` without a request or
    ``session_hours`` after sign-in, whichever comes first.  ``assessments_dir``
    (relative to the config file's state dir) holds ``clearance assess`` JSON
    reports, listed on the Assessments page.  The live decision stream polls the
    audit log every ``stream_poll_seconds``.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    idle_minutes: float = Field(default=30.0, gt=0)
    session_hours: float = Field(default=8.0, gt=0)
    assessments_dir: str = "assessments"
    stream_poll_seconds: float = Field(default=0.5, gt=0, le=10)
    # The window of the allow / deny / guard-block rates on the overview.
    rates_window_minutes: int = Field(default=60, ge=1, le=10_080)

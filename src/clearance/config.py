"""The YAML configuration file, typed.

A config names the store, the listening address, the upstream backends and
routes, and the settings of each stage.  Upstream credentials are never in
the file: a backend names the environment variable that holds its key.
Relative paths in the file are resolved against the file's own folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from clearance.audit.settings import AuditSettings
from clearance.console.settings import ConsoleSettings
from clearance.guard.settings import GuardSettings
from clearance.limits.settings import LimitsSettings
from clearance.identity.settings import IdentitySettings
from clearance.policy.settings import PolicySettings
from clearance.tracing import TracingSettings


class ConfigError(Exception):
    """The config file is missing, unreadable or invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    max_body_bytes: int = 1_048_576
    # Administrative API (``/admin/...``): a bearer token read from this env var.
    admin_token_env: str = "CLEARANCE_ADMIN_TOKEN"
    snapshot_poll_seconds: float = 0.25
    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"
    # One line per request on the ``clearance.access`` logger: id, principal, org, key id, model,
    # backend, decision, status, latency, tokens (never content).
    access_log: bool = False
    # JSON bodies nested deeper than this are refused with a 400 when they are read.
    max_json_depth: int = Field(default=64, ge=2, le=200)
    # A request's head (request line and headers): at most this many bytes and headers, else 431.
    max_header_bytes: int = Field(default=65_536, ge=1024)
    max_header_count: int = Field(default=100, ge=8)
    # A head must arrive within header_timeout_seconds of its first byte (or of the connection
    # opening), a body within body_timeout_seconds of its head; an idle keep-alive connection is
    # closed after keep_alive_timeout_seconds.
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    keep_alive_timeout_seconds: float = Field(default=5.0, gt=0)
    # ``/metrics`` asks for ``Authorization: Bearer <token>`` with the token read from this
    # environment variable; unset: open.  Set but the variable empty: closed to everyone.
    metrics_token_env: str | None = None


class BackendSettings(_Strict):
    """One upstream model server."""

    name: str
    kind: Literal["openai", "anthropic"] = "openai"
    base_url: str
    # The model name the upstream knows; defaults to the route's name.
    model: str | None = None
    api_key_env: str | None = None
    timeout_seconds: float = 60.0
    connect_timeout_seconds: float = 5.0
    # A backend marked unavailable is skipped by every route (an operator's switch).
    available: bool = True
    # Self-hosted backends keep data on the organisation's own machines.
    self_hosted: bool = False
    breaker_failures: int = 5
    breaker_cooldown_seconds: float = 30.0
    # A stream is cut off (as an upstream timeout) this long after it was requested, however
    # steadily the upstream keeps it alive; timeout_seconds still bounds each wait for data.
    max_stream_seconds: float | None = Field(default=600.0, gt=0)

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None


class ModelSettings(_Strict):
    """A logical model that callers name, and the chain of backends that serve it."""

    name: str
    family: str = ""
    backends: list[str] = Field(min_length=1)
    description: str = ""
    # Policy-relevant attributes of the model (see policy/schema.cedarschema).
    attributes: dict[str, object] = Field(default_factory=dict)


class Config(_Strict):
    path: Path | None = None
    state_dir: Path = Path("state")
    database_url: str | None = None
    server: ServerSettings = Field(default_factory=ServerSettings)
    backends: list[BackendSettings] = Field(default_factory=list)
    models: list[ModelSettings] = Field(default_factory=list)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    guard: GuardSettings = Field(default_factory=GuardSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)

    @field_validator("backends")
    @classmethod
    def _unique_backends(cls, v: list[BackendSettings]) -> list[BackendSettings]:
        names = [b.name for b in v]
        if len(names) != len(set(names)):
            raise ValueError("backend names must be unique")
        return v

    def model_post_init(self, _ctx) -> None:
        known = {b.name for b in self.backends}
        for m in self.models:
            missing = [b for b in m.backends if b not in known]
            if missing:
                raise ValueError(f"model {m.name!r} names unknown backends {missing}")

    @property
    def db_url(self) -> str:
        """The store's URL: ``database_url``, ``$CLEARANCE_DATABASE_URL``, or SQLite in the state dir."""
        url = os.environ.get("CLEARANCE_DATABASE_URL") or self.database_url
        if url:
            return url
        return f"sqlite:///{(self.state_dir / 'clearance.db').resolve()}"

    def resolve(self, p: str | Path) -> Path:
        """A path from the config, relative to the config file's folder."""
        p = Path(p)
        if p.is_absolute() or self.path is None:
            return p
        return (self.path.parent / p).resolve()

    def backend(self, name: str) -> BackendSettings:
        for b in self.backends:
            if b.name == name:
                return b
        raise KeyError(name)


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read config {path}: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path} must be a mapping")
    raw["path"] = path.resolve()
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"invalid config {path}:\n{e}") from None
    if not cfg.state_dir.is_absolute():
        cfg.state_dir = (path.resolve().parent / cfg.state_dir).resolve()
    return cfg

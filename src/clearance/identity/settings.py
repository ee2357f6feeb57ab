"""The ``identity`` section of the config: OIDC issuers whose tokens the gateway accepts.

```yaml
identity:
  oidc:
    - issuer: https://login.gridco.example
      jwks_url: https://login.gridco.example/.well-known/jwks.json
      audience: clearance
      org: gridco            # every user this issuer asserts belongs to gridco
      claims: {user: sub, nationality: nationality, us_person: us_person, verified: identity_verified}
      trust_verified: false  # whether the issuer's `verified` claim counts (default: compliance sets it)
```
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Algorithm = Literal["RS256", "ES256", "EdDSA"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClaimMap(_Strict):
    """Which claim of a token carries each attribute ("" to ignore an attribute)."""

    user: str = "sub"
    nationality: str = "nationality"
    us_person: str = "us_person"
    verified: str = "identity_verified"
    email: str = "email"
    use_case: str = ""


class OidcIssuer(_Strict):
    """One identity provider: tokens it signs are accepted for users of its ``org`` only."""

    issuer: str = Field(min_length=1)
    jwks_url: str = Field(min_length=1)
    audience: str | list[str]
    org: str = Field(min_length=1)
    claims: ClaimMap = Field(default_factory=ClaimMap)
    trust_verified: bool = False
    algorithms: list[Algorithm] = Field(default_factory=lambda: ["RS256", "ES256", "EdDSA"], min_length=1)
    leeway_seconds: float = Field(default=30.0, ge=0, le=300)
    # JWKS: kept this long, then fetched again on next use; an unknown key id triggers a fetch at most
    # once per ``jwks_min_refetch_seconds`` (so forged key ids cannot hammer the provider).
    jwks_cache_seconds: float = Field(default=300.0, gt=0)
    jwks_min_refetch_seconds: float = Field(default=10.0, ge=0)
    jwks_timeout_seconds: float = Field(default=5.0, gt=0)
    # Create or refresh the user in the store from each token's claims.
    provision_users: bool = True


class IdentitySettings(_Strict):
    oidc: list[OidcIssuer] = Field(default_factory=list)
    # Verified tokens are remembered (by SHA-256) until they expire, up to this many.
    token_cache_size: int = Field(default=10_000, ge=0)

    @field_validator("oidc")
    @classmethod
    def _unique_issuers(cls, v: list[OidcIssuer]) -> list[OidcIssuer]:
        names = [i.issuer for i in v]
        if len(names) != len(set(names)):
            raise ValueError("each OIDC issuer may be configured once")
        return v

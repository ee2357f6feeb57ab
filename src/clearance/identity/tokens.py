"""OIDC/JWT bearer tokens: verify a token and turn it into a ``Principal``.

A token is verified against its issuer's configuration (``identity.oidc``):
the signature with a key from the issuer's JWKS (RS256, ES256 or EdDSA),
``iss``, ``aud``, ``exp`` and ``nbf`` with the issuer's small leeway.  The
result is remembered by the token's SHA-256 until the token expires, so a
client reusing its token costs one dictionary lookup.

**An issuer asserts only users of its own org.**  The org is the issuer's
``org`` setting, never a claim: claims naming another org or org groups are
ignored, groups come from the store, and a user id that the store already
holds in another org is refused.  The issuer's ``verified`` claim counts
only with ``trust_verified``; otherwise verification stays what the
compliance team set in the store.

The user is created or refreshed in the store from the claims (by
``provision.py``, off the event loop) whenever the claims differ from what
the snapshot holds, and the snapshot is rebuilt before the request goes on,
so policy sees the token's attributes.  Disabled or deleted users and
disabled orgs are refused as for API keys.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime

import jwt

from clearance.api.errors import ApiError
from clearance.identity.jwks import Jwks, JwksUnavailable
from clearance.identity.service import SLUG, IdentityError, check_nationality
from clearance.identity.settings import IdentitySettings, OidcIssuer
from clearance.types import Principal

log = logging.getLogger("clearance.identity.tokens")

JWT_START = "eyJ"  # base64url of '{"': every JWT starts so; API keys start with "clr_"


def looks_like_jwt(credential: str | None) -> bool:
    return bool(credential) and credential.startswith(JWT_START) and credential.count(".") == 2


@dataclass(frozen=True)
class TokenIdentity:
    """What a verified token says about its user (org from the issuer's setting, never from a claim)."""

    issuer: str
    org: str
    user_id: str
    nationality: str
    us_person: bool
    verified: bool | None  # None unless the issuer is trusted for it
    email: str
    use_case: str
    expires: float
    token_id: str


def _unauthorized(message: str, code: str = "invalid_token") -> ApiError:
    return ApiError(401, message, type="authentication_error", code=code)


class TokenVerifier:
    """Verifies tokens of the configured issuers; one per gateway process."""

    def __init__(self, settings: IdentitySettings, provisioner=None) -> None:
        self.settings = settings
        self.issuers = {i.issuer: i for i in settings.oidc}
        self.jwks = {i.issuer: Jwks(i, self.forget) for i in settings.oidc}
        self._cache: dict[str, TokenIdentity] = {}
        self.provisioner = provisioner  # provision.Provisioner, or None to never write the store

    def bind(self, session) -> None:
        """Fetch keys with the gateway's aiohttp session."""
        for j in self.jwks.values():
            j.session = session

    def forget(self) -> None:
        """Drop remembered tokens (an issuer's key set changed: a key may have been withdrawn)."""
        self._cache.clear()

    # -- verification ------------------------------------------------------------

    async def verify(self, token: str, now: datetime) -> TokenIdentity:
        digest = hashlib.sha256(token.encode()).hexdigest()
        hit = self._cache.get(digest)
        ts = now.timestamp()
        if hit is not None and hit.expires > ts:
            return hit
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _unauthorized("malformed bearer token") from None
        issuer = self.issuers.get(str(unverified.get("iss", "")))
        if issuer is None:
            raise _unauthorized("the token's issuer is not trusted by this gateway", "untrusted_issuer")
        alg = header.get("alg")
        if alg not in issuer.algorithms:
            raise _unauthorized(f"token algorithm {alg!r} is not accepted for this issuer")
        try:
            key = await self.jwks[issuer.issuer].key(header.get("kid"))
        except JwksUnavailable as e:
            raise ApiError(503, str(e), type="api_error", code="jwks_unavailable") from None
        if key is None:
            raise _unauthorized("the token is signed with a key the issuer does not publish", "unknown_signing_key")
        try:
            claims = jwt.decode(token, key=key, algorithms=[alg], audience=issuer.audience, issuer=issuer.issuer,
                                leeway=issuer.leeway_seconds, options={"require": ["exp", "iss", "aud"]})
        except jwt.ExpiredSignatureError:
            raise _unauthorized("the token has expired", "expired_token") from None
        except jwt.InvalidAudienceError:
            raise _unauthorized("the token is not meant for this gateway (audience)", "invalid_audience") from None
        except jwt.ImmatureSignatureError:
            raise _unauthorized("the token is not valid yet (nbf)", "invalid_token") from None
        except jwt.PyJWTError as e:
            raise _unauthorized(f"invalid token: {e}") from None
        ident = self._identity(issuer, claims, digest)
        if len(self._cache) >= self.settings.token_cache_size:
            self._cache.clear()
        if self.settings.token_cache_size:
            self._cache[digest] = ident
        return ident

    @staticmethod
    def _identity(issuer: OidcIssuer, claims: dict, digest: str) -> TokenIdentity:
        m = issuer.claims
        user = claims.get(m.user)
        if not isinstance(user, str) or not SLUG.match(user):
            raise _unauthorized(f"the token's {m.user!r} claim is not a valid user id (lowercase letters, digits, "
                                "'.', '_' or '-', at most 64)")
        try:
            nationality = check_nationality(_text(claims, m.nationality))
        except IdentityError as e:
            raise _unauthorized(f"the token's {m.nationality!r} claim: {e}") from None
        raw_us = claims.get(m.us_person) if m.us_person else None
        if raw_us is not None and not isinstance(raw_us, bool):
            raise _unauthorized(f"the token's {m.us_person!r} claim must be true or false")
        if nationality == "US" and raw_us is None:
            raise _unauthorized(f"the token names a US national without a {m.us_person!r} claim")
        verified = None
        if issuer.trust_verified and m.verified:
            v = claims.get(m.verified, False)
            if not isinstance(v, bool):
                raise _unauthorized(f"the token's {m.verified!r} claim must be true or false")
            verified = v
        return TokenIdentity(issuer=issuer.issuer, org=issuer.org, user_id=user, nationality=nationality,
                             us_person=bool(raw_us), verified=verified, email=_text(claims, m.email),
                             use_case=_text(claims, m.use_case), expires=float(claims["exp"]),
                             token_id="jwt:" + digest[:12])

    # -- the principal -----------------------------------------------------------

    async def identify(self, snapshots, token: str, now: datetime):
        """``(snapshot, principal)`` for a bearer token; the snapshot holds the user as the token describes it."""
        ident = await self.verify(token, now)
        snapshot = snapshots.current
        if self.provisioner is not None and self.issuers[ident.issuer].provision_users and _differs(snapshot, ident):
            await self.provisioner.provision(ident)
            snapshot = snapshots.current
        return snapshot, principal_of(snapshot, ident)


def _text(claims: dict, name: str) -> str:
    v = claims.get(name) if name else None
    return v if isinstance(v, str) else ""


def _differs(snapshot, ident: TokenIdentity) -> bool:
    """Whether the store (as the snapshot holds it) lacks the user or holds other attributes than the token."""
    u = snapshot.users.get(ident.user_id)
    if u is None:
        return True
    if u.org != ident.org or u.refusal:
        return False  # refused below; a token never changes another org's user, nor a disabled one
    return ((u.nationality, u.us_person, u.email) != (ident.nationality, ident.us_person, ident.email)
            or (ident.verified is not None and u.verified != ident.verified and u.verified_until is None))


def principal_of(snapshot, ident: TokenIdentity) -> Principal:
    """The principal for a verified token, checked against the store: the issuer's org only, never disabled."""
    org = snapshot.orgs.get(ident.org)
    if org is None:
        raise ApiError(403, f"organisation {ident.org!r} of this token's issuer is not known to the gateway",
                       type="permission_error", code="unknown_org")
    if org.disabled:
        raise ApiError(403, f"organisation {ident.org!r} is disabled", type="permission_error", code="org_disabled")
    u = snapshot.users.get(ident.user_id)
    if u is None:
        raise ApiError(403, f"user {ident.user_id!r} is not provisioned", type="permission_error",
                       code="unknown_user")
    if u.org != ident.org:
        raise ApiError(403, f"user {ident.user_id!r} belongs to another organisation; this token's issuer may "
                            f"assert only users of {ident.org!r}", type="permission_error", code="wrong_org")
    if u.refusal:
        from clearance.pipeline import refused

        raise refused(u.refusal, ident.user_id, ident.org)
    return Principal(key_id=ident.token_id, user_id=ident.user_id, org_id=ident.org, groups=org.groups,
                     nationality=u.nationality, us_person=u.us_person, verified=u.verified,
                     use_case=ident.use_case)


"""Token verification against a loopback JWKS endpoint: caching, rate-limited refetch, claims to identity."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from clearance.api.errors import ApiError
from clearance.identity.settings import IdentitySettings
from clearance.identity.tokens import TokenVerifier, looks_like_jwt
from tests.integration.idp import TestIdP


@pytest.fixture
def idp():
    p = TestIdP()
    p.add_key("k1", "RS256")
    yield p
    p.stop()


def verifier(idp, **issuer) -> TokenVerifier:
    return TokenVerifier(IdentitySettings.model_validate({"oidc": [
        {"issuer": idp.issuer, "jwks_url": idp.jwks_url, "audience": "clearance", "org": "gridco", **issuer}]}))


def verify(v: TokenVerifier, token: str):
    return asyncio.run(v.verify(token, datetime.now(timezone.utc)))


def test_api_keys_and_tokens_are_told_apart():
    assert not looks_like_jwt("clr_k123_secret") and not looks_like_jwt(None) and not looks_like_jwt("")
    assert looks_like_jwt("eyJhbGciOi.eyJzdWIi.c2ln")


def test_a_verified_token_is_remembered_and_its_org_comes_from_the_issuer(idp):
    v = verifier(idp)
    token = idp.token("k1", sub="ann", nationality="gb", us_person=False, org="acme", identity_verified=True)

    async def twice():
        now = datetime.now(timezone.utc)
        return await v.verify(token, now), await v.verify(token, now)

    first, second = asyncio.run(twice())
    assert first is second and idp.fetches == 1
    assert (first.org, first.user_id, first.nationality, first.us_person) == ("gridco", "ann", "GB", False)
    assert first.verified is None  # not trusted for `verified` by default
    assert verify(verifier(idp, trust_verified=True), token).verified is True


def test_unknown_key_ids_refetch_at_most_once_per_interval(idp):
    idp.add_key("ghost", "RS256", publish=False)
    v = verifier(idp, jwks_min_refetch_seconds=60)
    assert verify(v, idp.token("k1", sub="ann", nationality="DE", us_person=False)).user_id == "ann"
    fetched = idp.fetches

    async def many():
        errors = []
        for _ in range(5):
            try:
                await v.verify(idp.token("ghost", sub="x", nationality="DE", us_person=False),
                               datetime.now(timezone.utc))
            except ApiError as e:
                errors.append(e.code)
        return errors

    assert asyncio.run(many()) == ["unknown_signing_key"] * 5
    assert idp.fetches - fetched <= 1


@pytest.mark.parametrize("claims, message", [
    ({"sub": "ann", "nationality": "XX", "us_person": False}, "ISO 3166"),
    ({"sub": "ann", "nationality": "US"}, "us_person"),
    ({"sub": "ann", "nationality": "DE", "us_person": "no"}, "true or false"),
    ({"sub": "Ann Smith", "nationality": "DE", "us_person": False}, "valid user id"),
    ({"sub": 42, "nationality": "DE", "us_person": False}, "Subject must be a string"),
])
def test_bad_claims_are_refused(idp, claims, message):
    with pytest.raises(ApiError) as e:
        verify(verifier(idp), idp.token("k1", **claims))
    assert e.value.status == 401 and message in e.value.message


def test_an_unreachable_provider_fails_closed(idp):
    v = TokenVerifier(IdentitySettings.model_validate({"oidc": [
        {"issuer": idp.issuer, "jwks_url": "http://127.0.0.1:9/jwks", "audience": "clearance", "org": "gridco",
         "jwks_timeout_seconds": 1}]}))
    with pytest.raises(ApiError) as e:
        verify(v, idp.token("k1", sub="ann", nationality="DE", us_person=False))
    assert e.value.status == 503 and e.value.code == "jwks_unavailable"

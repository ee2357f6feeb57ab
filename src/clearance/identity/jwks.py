"""An issuer's JSON Web Key Set: fetched with aiohttp, cached, refetched on rotation.

Keys are parsed by PyJWT (``PyJWKSet``: RSA, EC and OKP/Ed25519).  The set is
kept for ``jwks_cache_seconds``; a token naming a key id the set lacks
triggers one refetch, at most once per ``jwks_min_refetch_seconds`` (so
tokens with made-up key ids cannot make the gateway hammer the provider).
When a fetch fails, the keys already held stay in use; with none held the
caller is told the provider is unavailable.  Concurrent callers share one
fetch.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import jwt

from clearance.identity.settings import OidcIssuer

log = logging.getLogger("clearance.identity.jwks")


class JwksUnavailable(Exception):
    """The issuer's keys could not be fetched and none are held."""


class Jwks:
    """The keys of one issuer."""

    def __init__(self, issuer: OidcIssuer, on_change=None) -> None:
        self.issuer = issuer
        self.keys: dict[str, jwt.PyJWK] = {}
        self.fetched_at = 0.0
        self._attempted_at = float("-inf")
        self._fetching: asyncio.Future | None = None
        self._on_change = on_change  # called when the key set changes (a key may have been withdrawn)
        self.session: aiohttp.ClientSession | None = None

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        """The key named ``kid`` (or the only key, when the token names none); None when the issuer has no such key."""
        stale = time.monotonic() - self.fetched_at > self.issuer.jwks_cache_seconds
        found = self._find(kid)
        if found is not None and not stale:
            return found
        if found is None and not stale and time.monotonic() - self._attempted_at < self.issuer.jwks_min_refetch_seconds:
            return None  # fetched a moment ago; an unknown key id does not earn another fetch yet
        await self._refresh()
        return self._find(kid)

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            return next(iter(self.keys.values())) if len(self.keys) == 1 else None
        return self.keys.get(kid)

    async def _refresh(self) -> None:
        if self._fetching is not None:  # someone is fetching: wait for theirs
            await asyncio.shield(self._fetching)
            return
        self._fetching = asyncio.get_running_loop().create_future()
        self._attempted_at = time.monotonic()
        try:
            keys = await self._fetch()
            if set(keys) != set(self.keys) and self.keys and self._on_change is not None:
                self._on_change()
            self.keys, self.fetched_at = keys, time.monotonic()
        except Exception as e:
            log.warning("JWKS fetch failed", extra={"issuer": self.issuer.issuer, "error": f"{type(e).__name__}: {e}"})
            if not self.keys:
                raise JwksUnavailable(f"the signing keys of issuer {self.issuer.issuer!r} cannot be fetched") from None
        finally:
            self._fetching.set_result(None)
            self._fetching = None

    async def _fetch(self) -> dict[str, jwt.PyJWK]:
        session = self.session
        own = session is None
        if own:
            session = aiohttp.ClientSession(trust_env=False)
        try:
            timeout = aiohttp.ClientTimeout(total=self.issuer.jwks_timeout_seconds)
            async with session.get(self.issuer.jwks_url, timeout=timeout, allow_redirects=False) as resp:
                if resp.status != 200:
                    raise ValueError(f"HTTP {resp.status}")
                body = await resp.json(content_type=None)
        finally:
            if own:
                await session.close()
        keyset = jwt.PyJWKSet.from_dict(body)  # keys of unsupported types are skipped by PyJWT
        keys: dict[str, jwt.PyJWK] = {}
        for k in keyset.keys:
            if k.public_key_use not in (None, "sig"):
                continue
            keys[k.key_id or ""] = k
        if not keys:
            raise ValueError("no usable signing keys")
        return keys

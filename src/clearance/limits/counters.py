"""Where use is counted: in the process, or on Redis for every replica at once.

Both take the same two calls.  ``take(checks)``: each check is (counter key,
limit, amount to add, seconds to keep); a request check adds 1 and fails when
the count would pass its limit, a budget check adds nothing and fails when
the count has reached its limit; if none fails, the request checks are all
counted, at once (on Redis, one server-side script: atomic across replicas).
It returns the index of the first failing check, or -1.  ``add(amounts)``
adds tokens or spend after an answer.  A counter store that cannot answer
raises ``StoreError``.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

Check = tuple[str, int, int, int]  # key, limit, amount, ttl seconds


class StoreError(Exception):
    pass


def _fails(current: int, limit: int, amount: int) -> bool:
    return current + amount > limit if amount else current >= limit


class MemoryCounters:
    """Counters of this process (one replica)."""

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, float]] = {}

    def _get(self, key: str, now: float) -> int:
        got = self._counts.get(key)
        if got is None or got[1] <= now:
            return 0
        return got[0]

    async def take(self, checks: list[Check]) -> int:
        now = time.monotonic()
        for i, (key, limit, amount, _) in enumerate(checks):
            if _fails(self._get(key, now), limit, amount):
                return i
        for key, _, amount, ttl in checks:
            if amount:
                self._counts[key] = (self._get(key, now) + amount, now + ttl)
        if len(self._counts) > 200_000:  # drop what has expired
            self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
        return -1

    async def add(self, amounts: list[Check]) -> None:
        now = time.monotonic()
        for key, _, amount, ttl in amounts:
            if amount:
                self._counts[key] = (self._get(key, now) + amount, now + ttl)

    async def aclose(self) -> None:
        pass


_TAKE = """
for i = 1, #KEYS do
  local cur = tonumber(redis.call('GET', KEYS[i]) or '0')
  local lim = tonumber(ARGV[3*i-2])
  local amount = tonumber(ARGV[3*i-1])
  if (amount > 0 and cur + amount > lim) or (amount == 0 and cur >= lim) then return i - 1 end
end
for i = 1, #KEYS do
  local amount = tonumber(ARGV[3*i-1])
  if amount > 0 then
    redis.call('INCRBY', KEYS[i], amount)
    redis.call('EXPIRE', KEYS[i], ARGV[3*i])
  end
end
return -1
"""


class RedisCounters:
    """Counters on Redis, shared by every replica; each call bounded by ``timeout`` seconds."""

    def __init__(self, url: str, timeout: float, max_connections: int = 64) -> None:
        import redis.asyncio as redis

        self.timeout = timeout
        self._errors = (redis.RedisError, OSError, asyncio.TimeoutError)
        # A bounded pool: under a burst, requests wait briefly for a connection instead of each
        # opening its own.
        pool = redis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=timeout,
                                                     socket_timeout=timeout, socket_connect_timeout=timeout)
        self._client = redis.Redis(connection_pool=pool, retry_on_timeout=False)
        self._sha = hashlib.sha1(_TAKE.encode()).hexdigest()
        from redis.exceptions import NoScriptError

        self._noscript = NoScriptError

    async def take(self, checks: list[Check]) -> int:
        args = [c[0] for c in checks] + [x for _, limit, amount, ttl in checks for x in (limit, amount, ttl)]
        try:  # EVALSHA directly (the script is loaded once; reloaded if the server forgot it)
            try:
                got = await asyncio.wait_for(self._client.execute_command("EVALSHA", self._sha, len(checks), *args),
                                             self.timeout)
            except self._noscript:
                self._sha = await self._client.script_load(_TAKE)
                got = await asyncio.wait_for(self._client.execute_command("EVALSHA", self._sha, len(checks), *args),
                                             self.timeout)
            return int(got)
        except self._errors as e:
            raise StoreError(f"{type(e).__name__}: {e}") from None

    async def add(self, amounts: list[Check]) -> None:
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for key, _, amount, ttl in amounts:
                    if amount:
                        pipe.incrby(key, amount)
                        pipe.expire(key, ttl)
                await asyncio.wait_for(pipe.execute(), self.timeout)
        except self._errors as e:
            raise StoreError(f"{type(e).__name__}: {e}") from None

    async def aclose(self) -> None:
        await self._client.aclose()

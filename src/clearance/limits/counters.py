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
from collections import deque
from collections.abc import Sequence

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

    async def take(self, checks: Sequence[Check]) -> int:
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
    """Counters on Redis, shared by every replica; each call bounded by ``timeout`` seconds.

    The connections are redis-py's own (they pack commands and parse replies) but this class
    keeps them: a call takes an idle connection, sends, reads the reply and puts it back, with
    no pool lock, no per-call task and one ``asyncio.timeout`` for the whole call (through
    redis-py's client and pool a check cost about 50 µs of CPU, this way about 15: see
    bench/limits_check.py).  At most ``max_connections`` are open; a call that finds them all
    busy waits for one within its timeout.  A connection that failed, timed out or was closed
    by the server is dropped, so a dead Redis fails each call at once (connection refused) or
    within the timeout.
    """

    def __init__(self, url: str, timeout: float, max_connections: int = 64) -> None:
        import redis.asyncio as redis
        from redis.exceptions import NoScriptError

        self.timeout = timeout
        self._errors = (redis.RedisError, OSError, asyncio.TimeoutError)
        self._noscript = NoScriptError
        # Used only to make connections from the URL (TCP, TLS or a Unix socket, database, password).
        # No socket timeout on a connection: the call's own timeout bounds the whole exchange.
        self._maker = redis.ConnectionPool.from_url(url, socket_timeout=None, socket_connect_timeout=timeout)
        self._max = max_connections
        self._idle: list = []
        self._open = 0  # connections open or being opened
        self._waiting: deque[asyncio.Future] = deque()  # calls waiting for a connection
        self._sha = hashlib.sha1(_TAKE.encode()).hexdigest()  # SCRIPT LOAD gives the same
        self._packed: dict[tuple, list[bytes]] = {}  # checks -> their EVALSHA, packed

    async def take(self, checks: Sequence[Check]) -> int:
        try:
            async with asyncio.timeout(self.timeout):
                conn = await self._acquire()
                packed = self._packed.get(checks) if type(checks) is tuple else None
                if packed is None:  # the same checks come again for a minute: their command is packed once
                    args = [c[0] for c in checks] + [x for _, lim, amount, ttl in checks for x in (lim, amount, ttl)]
                    packed = conn.pack_command("EVALSHA", self._sha, len(checks), *args)
                    if type(checks) is tuple:
                        if len(self._packed) >= 4096:
                            self._packed.clear()
                        self._packed[checks] = packed
                return int((await self._call(conn, packed, 1, checks))[0])
        except self._errors as e:
            raise StoreError(f"{type(e).__name__}: {e}") from None

    async def add(self, amounts: list[Check]) -> None:
        commands = [cmd for key, _, amount, ttl in amounts if amount
                    for cmd in (("INCRBY", key, amount), ("EXPIRE", key, ttl))]
        if not commands:
            return
        try:
            async with asyncio.timeout(self.timeout):
                conn = await self._acquire()
                await self._call(conn, conn.pack_commands(commands), len(commands))
        except self._errors as e:
            raise StoreError(f"{type(e).__name__}: {e}") from None

    async def _call(self, conn, packed: list[bytes], replies: int, checks: Sequence[Check] | None = None) -> list:
        """Send ``packed`` (``replies`` commands) in one write on ``conn`` and read the replies; then the
        connection is put back, or dropped if anything failed.  With ``checks``, the command is the check
        script's EVALSHA: loaded and sent again if Redis forgot the script."""
        try:
            await conn.send_packed_command(packed, check_health=False)
            got = []
            for _ in range(replies):
                try:
                    got.append(await conn.read_response())
                except self._noscript:
                    if checks is None:
                        raise
                    await conn.send_command("SCRIPT", "LOAD", _TAKE, check_health=False)
                    await conn.read_response()
                    args = [c[0] for c in checks] + [x for _, lim, amount, ttl in checks for x in (lim, amount, ttl)]
                    await conn.send_command("EVALSHA", self._sha, len(checks), *args, check_health=False)
                    got.append(await conn.read_response())
        except BaseException:
            await self._drop(conn)
            raise
        self._release(conn)
        return got

    async def _acquire(self):
        """An idle connection still fit for use, a new one (below the cap), or the next one put back."""
        while True:
            while self._idle:
                conn = self._idle.pop()
                try:
                    if not await conn.can_read():  # unread bytes or a closed socket: not reusable
                        return conn
                except self._errors:
                    pass
                await self._drop(conn, wake=False)
            if self._open < self._max:
                self._open += 1
                conn = self._maker.make_connection()
                try:
                    await conn.connect()
                except BaseException:
                    await self._drop(conn)
                    raise
                return conn
            turn = asyncio.get_running_loop().create_future()
            self._waiting.append(turn)
            try:
                conn = await turn
            except BaseException:  # gave up (timeout, cancelled): pass on what it was handed
                if turn.done() and not turn.cancelled():
                    if turn.result() is not None:
                        self._release(turn.result())
                    else:
                        self._wake()
                raise
            if conn is not None:
                return conn
            # None: a connection was dropped, so one may be opened

    def _release(self, conn) -> None:
        """Hand ``conn`` to the first call waiting for one, or keep it idle."""
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(conn)
                return
        self._idle.append(conn)

    async def _drop(self, conn, wake: bool = True) -> None:
        """Close ``conn`` for good (it failed, timed out or was closed by the server)."""
        self._open -= 1
        try:
            await conn.disconnect(nowait=True)
        except Exception:
            pass
        if wake:
            self._wake()

    def _wake(self) -> None:
        """Tell the first waiting call that it may open a connection (one was dropped)."""
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await self._drop(conn, wake=False)

"""The counters on a real ``redis-server`` (skipped without one): what a check admits, the connections
the counters keep (capped, reopened when the server closed them), the script reloaded when Redis forgot
it, and a store error when Redis is gone or slower than the timeout."""

from __future__ import annotations

import asyncio

import pytest

from clearance.limits.counters import MemoryCounters, RedisCounters, StoreError
from tests.conftest import free_port


@pytest.fixture
def redis_url(redis_server):
    return redis_server["url"]


def _run(coro):
    return asyncio.run(coro)


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_a_request_limit_admits_exactly_its_count_and_a_budget_stops_once_reached(kind, request):
    async def go():
        c = MemoryCounters() if kind == "memory" else RedisCounters(request.getfixturevalue("redis_url"), 1.0, 3)
        checks = (("k:r", 5, 1, 60), ("k:t", 100, 0, 60))
        got = await asyncio.gather(*(c.take(checks) for _ in range(8)))
        assert sorted(got) == [-1] * 5 + [0] * 3
        await c.add([("k:t", 0, 100, 60)])
        assert await c.take((("k:r2", 5, 1, 60), ("k:t", 100, 0, 60))) == 1
        await c.aclose()

    _run(go())


def test_redis_connections_are_capped_reused_and_reopened(redis_url):
    import redis.asyncio as redis

    async def go():
        c = RedisCounters(redis_url, 1.0, max_connections=2)
        checks = [("c:r", 10**6, 1, 60)]
        assert set(await asyncio.gather(*(c.take(checks) for _ in range(20)))) == {-1}
        assert c._open <= 2 and len(c._idle) == c._open
        admin = redis.Redis.from_url(redis_url)
        await admin.client_kill_filter(_type="normal", skipme=True)  # the server closes the idle ones
        await asyncio.sleep(0.1)
        await admin.script_flush()  # and forgets the script
        assert await c.take(checks) == -1
        assert int(await admin.get("c:r")) == 21
        await admin.aclose()
        await c.aclose()
        assert c._open == 0

    _run(go())


def test_a_dead_or_paused_redis_is_a_store_error(redis_url):
    """Refused connections fail at once; a server paused for longer than the timeout fails each waiting call
    (the one on the connection and those waiting for it), and the next call after it resumes is served."""
    import redis.asyncio as redis

    async def go():
        dead = RedisCounters(f"redis://127.0.0.1:{free_port()}/0", 0.2)
        with pytest.raises(StoreError):
            await dead.take([("d:r", 5, 1, 60)])
        c = RedisCounters(redis_url, 0.2, max_connections=1)
        await c.take([("p:r", 5, 1, 60)])
        admin = redis.Redis.from_url(redis_url)
        await admin.execute_command("CLIENT", "PAUSE", 1000, "ALL")
        got = await asyncio.gather(*(c.take([("p:r", 5, 1, 60)]) for _ in range(3)), return_exceptions=True)
        assert all(isinstance(g, StoreError) for g in got)
        await admin.execute_command("CLIENT", "UNPAUSE")
        assert await c.take([("p:r", 5, 1, 60)]) == -1
        await admin.aclose()
        await c.aclose()

    _run(go())

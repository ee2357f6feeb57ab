"""Shared fixtures: store URLs for SQLite and PostgreSQL, free ports.

PostgreSQL tests use a fresh database per test session, created on the server
named by ``$CLEARANCE_TEST_PG`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``)
and dropped afterwards.  When no server answers they are skipped locally, but
fail under CI (``CI=true``), where .ci/run starts PostgreSQL.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time

import pytest

PG_ADMIN_URL = os.environ.get("CLEARANCE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_admin():
    import psycopg

    return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)


def make_pg_database() -> str:
    """Create a fresh, uniquely named PostgreSQL database and return its URL."""
    name = "clearance_test_" + secrets.token_hex(6)
    try:
        with _pg_admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {e}")
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    try:
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception:
        pass


def pg_database():
    """Yield the URL of a fresh PostgreSQL database, dropped afterwards (``yield from`` in a fixture)."""
    url = make_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh empty store, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'clearance.db'}"
        return
    yield from pg_database()


@pytest.fixture
def redis_server():
    """A real redis-server of this test's own on a free loopback port, nothing kept on disk:
    ``{"url": ..., "proc": ...}`` (a test may kill it).  Skipped where redis-server is not installed."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed")
    import redis

    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis(port=port).ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    yield {"url": f"redis://127.0.0.1:{port}/0", "proc": proc}
    proc.kill()
    proc.wait()

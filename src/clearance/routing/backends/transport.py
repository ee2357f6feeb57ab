"""The upstream HTTP transport shared by every backend: aiohttp, pooled and kept alive.

One ``aiohttp.ClientSession`` per worker process serves all backends (and
keeps no cookies, since it serves every caller).  This
module owns what the backends have in common: the session's limits, how
timeouts are expressed, how transport failures become ``UpstreamError``, and
reading server-sent events from a response.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import cached_property

import aiohttp

from clearance.routing.backends.base import UpstreamError


def make_session(limit: int = 1000) -> aiohttp.ClientSession:
    """A keep-alive session; create it inside the running event loop."""
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=0, keepalive_timeout=30, ttl_dns_cache=300)
    # No cookie jar: the session is shared by every caller, so a cookie one
    # upstream answer sets must not ride along on another caller's request.
    return aiohttp.ClientSession(connector=connector, auto_decompress=True, trust_env=False,
                                 skip_auto_headers=("User-Agent",), cookie_jar=aiohttp.DummyCookieJar())


@dataclass(frozen=True)
class Timeouts:
    """``total`` bounds a whole non-streamed call; for streams it bounds each wait for data, and
    ``stream_total`` (None: no bound) the whole stream, however steadily the upstream keeps it alive."""

    total: float = 60.0
    connect: float = 5.0
    stream_total: float | None = None

    def for_call(self) -> aiohttp.ClientTimeout:
        return self._call

    def for_stream(self) -> aiohttp.ClientTimeout:
        return self._stream

    # Built once: ``ClientTimeout`` is immutable, and these are asked for on every upstream call.
    @cached_property
    def _call(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self.total, sock_connect=self.connect)

    @cached_property
    def _stream(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self.stream_total, sock_connect=self.connect, sock_read=self.total)


def redirect_error(name: str, status: int) -> UpstreamError:
    """An upstream that answers with a redirect: never followed (the prompt would go to wherever it
    points), a failure of that backend like a 5xx."""
    return UpstreamError(f"backend {name} answered {status} (a redirect, not followed)", status=502,
                         retryable=True, upstream_status=status)


def transport_error(name: str, exc: BaseException) -> UpstreamError:
    """The UpstreamError for a failed connection, a timeout or a broken response."""
    if isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)):
        return UpstreamError(f"backend {name}: cannot connect", status=502)
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return UpstreamError(f"backend {name}: timed out", status=504)
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError)):
        return UpstreamError(f"backend {name}: closed the connection before the answer was complete", status=502)
    return UpstreamError(f"backend {name}: {type(exc).__name__}", status=502)


TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)


class SSEParser:
    """Incremental server-sent event parser over raw bytes: feed what arrived, get complete events."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[tuple[str, str]]:
        buf = (self._buf + data).replace(b"\r\n", b"\n")
        *blocks, self._buf = buf.split(b"\n\n")
        return [ev for block in blocks if (ev := _parse_block(block)) is not None]

    def close(self) -> list[tuple[str, str]]:
        rest, self._buf = self._buf, b""
        ev = _parse_block(rest.rstrip(b"\r\n"))
        return [ev] if ev is not None else []


def _parse_block(block: bytes) -> tuple[str, str] | None:
    event, data = "", []
    for line in block.decode("utf-8", "replace").split("\n"):
        if not line or line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
    return (event, "\n".join(data)) if (event or data) else None


async def iter_sse_batches(response: aiohttp.ClientResponse) -> AsyncIterator[list[tuple[str, str]]]:
    """The events of a stream, grouped by the network read that completed them."""
    parser = SSEParser()
    async for data in response.content.iter_any():
        events = parser.feed(data)
        if events:
            yield events
    rest = parser.close()
    if rest:
        yield rest

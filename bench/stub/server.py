"""A tiny, fast OpenAI-compatible upstream for the gateway benchmark.

It answers every ``POST`` with a fixed chat completion, or a fixed
server-sent-event stream (with usage) when the request body asks for
``"stream": true``, and every ``GET`` with a one-model ``/v1/models`` list.
It is a raw asyncio protocol on uvloop with the httptools parser, so one core
serves tens of thousands of requests per second and the stub is never what
limits a run.  Several processes can share the port (``--workers``).

Run: ``python bench/stub/server.py --port 9100 [--workers N] [--cpu 0]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import sys
from pathlib import Path

import httptools
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
import responses  # noqa: E402

JSON_RESPONSE = responses.http_json_response()
STREAM_RESPONSE = responses.http_stream_response()
MODELS_RESPONSE = responses.http_models_response()
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_STREAM_TRUE = re.compile(rb'"stream"\s*:\s*true')


class StubProtocol(asyncio.Protocol):
    """One client connection: parse requests, write the fixed answers."""

    __slots__ = ("transport", "parser", "body")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.write(BAD_REQUEST)
            self.transport.close()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        assert self.transport is not None
        if self.parser.get_method() == b"GET":
            answer = MODELS_RESPONSE
        elif _STREAM_TRUE.search(b"".join(self.body)):
            answer = STREAM_RESPONSE
        else:
            answer = JSON_RESPONSE
        self.body.clear()
        self.transport.write(answer)
        if not self.parser.should_keep_alive():
            self.transport.close()


def _listening_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


async def _serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(StubProtocol, sock=_listening_socket(host, port))
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def serve(host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT, in this process."""
    uvloop.run(_serve(host, port))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--workers", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)")
    ap.add_argument("--cpu", type=str, default="", help="comma-separated CPU cores to pin to")
    args = ap.parse_args(argv)
    if args.cpu:
        os.sched_setaffinity(0, {int(c) for c in args.cpu.split(",")})
    children: list[int] = []
    for _ in range(max(0, args.workers - 1)):
        pid = os.fork()
        if pid == 0:
            serve(args.host, args.port)
            os._exit(0)
        children.append(pid)

    try:
        serve(args.host, args.port)
    finally:
        for child in children:
            try:
                os.kill(child, signal.SIGTERM)
                os.waitpid(child, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The serving protocol: a response's head goes out in the same socket write as its first body part."""

import asyncio
import logging
import socket
import threading
import time

import uvicorn
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from uvicorn.protocols.http.flow_control import FlowControl

from clearance.httpserver import CoalescingCycle, HttpProtocol


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _cycle(transport: FakeTransport, method: str = "GET", keep_alive: bool = True) -> CoalescingCycle:
    scope = {"type": "http", "method": method, "path": "/", "headers": [], "http_version": "1.1"}
    return CoalescingCycle(scope=scope, transport=transport, flow=FlowControl(transport),
                           logger=logging.getLogger("test"), access_logger=logging.getLogger("test"),
                           access_log=False, default_headers=[], message_event=asyncio.Event(),
                           expect_100_continue=False, keep_alive=keep_alive, on_response=lambda: None)


async def _no_receive():  # the client neither sends more nor leaves
    await asyncio.Event().wait()


def _serve(response, method: str = "GET", keep_alive: bool = True) -> FakeTransport:
    transport = FakeTransport()
    cycle = _cycle(transport, method, keep_alive)
    asyncio.run(response(cycle.scope, _no_receive, cycle.send))
    return transport


def test_plain_response_is_one_write_with_head_and_body():
    t = _serve(Response(b'{"ok":true}', media_type="application/json", headers={"x-request-id": "r1"}))
    assert len(t.writes) == 1
    head, _, body = t.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"x-request-id: r1" in head and b"content-length: 11" in head
    assert body == b'{"ok":true}'


def test_stream_sends_head_with_first_part_then_the_rest():
    async def parts():
        yield b"data: a\n\n"
        yield b"data: b\n\n"

    t = _serve(StreamingResponse(parts(), media_type="text/event-stream"))
    assert t.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert t.writes[0].endswith(b"\r\n\r\n9\r\ndata: a\n\n\r\n")
    assert b"".join(t.writes[1:]) == b"9\r\ndata: b\n\n\r\n0\r\n\r\n"


def test_head_request_still_sends_the_head():
    t = _serve(Response(b"body", media_type="text/plain"), method="HEAD")
    assert len(t.writes) == 1 and t.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert t.writes[0].endswith(b"\r\n\r\n")


def test_connection_close_sends_head_and_body_before_closing():
    t = _serve(Response(b"bye", media_type="text/plain"), keep_alive=False)
    assert t.closed
    assert len(t.writes) == 1 and t.writes[0].endswith(b"\r\n\r\nbye")
    assert b"connection: close" in t.writes[0]


async def _echo(scope, receive, send):
    if scope["type"] != "http":
        return
    request = Request(scope, receive)
    body = await request.body()
    await Response(b"echo:" + body, media_type="text/plain")(scope, receive, send)


class _Server:
    def __enter__(self) -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(_echo, host="127.0.0.1", port=port, http=HttpProtocol,
                                                    lifespan="off", log_level="warning", loop="asyncio"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return port

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _read_until(c: socket.socket, end: bytes) -> bytes:
    data = b""
    while not data.endswith(end):
        chunk = c.recv(4096)
        assert chunk, "connection closed early"
        data += chunk
    return data


def test_served_over_a_socket_with_keep_alive():
    with _Server() as port, socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        for text in (b"one", b"two"):  # two requests on one connection
            c.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n" + text)
            data = _read_until(c, b"echo:" + text)
            assert data.startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: 8\r\n" in data


def test_100_continue_is_sent_before_the_body_arrives():
    with _Server() as port, socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        assert _read_until(c, b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        c.sendall(b"abc")
        assert _read_until(c, b"echo:abc").startswith(b"HTTP/1.1 200 OK\r\n")

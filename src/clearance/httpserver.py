"""The HTTP/1.1 protocol ``clearance serve`` runs under uvicorn: a response's head goes out with its body.

uvicorn (httptools) writes a response's status line and headers in one
``transport.write`` and its body in another, and uvloop sends each write to
the socket at once: two system calls, two TCP segments, and two wake-ups of
the client, for every response.  ``HttpProtocol`` is uvicorn's own httptools
protocol with one change: each request's cycle holds the head back and sends
it in the same write as the first body part (the whole body of a plain
response, the first events of a stream).  The bytes on the wire are the same.

A head with no body write after it (a ``HEAD`` request, a client gone) is
sent on its own when the response completes, as before.  ``100 Continue``
is written before the response starts and is never held.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle


class _Capture:
    """Stands in for the transport while uvicorn renders a response's head: keeps what it writes."""

    __slots__ = ("transport", "data")

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class _Prefixed:
    """The transport, with a held head put in front of the next write."""

    __slots__ = ("transport", "head")

    def __init__(self, transport: Any, head: bytes) -> None:
        self.transport = transport
        self.head = head

    def write(self, data: bytes) -> None:
        head, self.head = self.head, b""
        self.transport.write(head + data if head else data)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def flush(self) -> None:
        if self.head:
            head, self.head = self.head, b""
            self.transport.write(head)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class CoalescingCycle(RequestResponseCycle):
    """uvicorn's request/response cycle, sending the response head with the first body write."""

    _head: bytes | None = None

    async def send(self, message: Any) -> None:
        if message["type"] == "http.response.start" and not self.response_started and not self.disconnected:
            transport = self.transport
            capture = _Capture(transport)
            self.transport = capture  # type: ignore[assignment]
            try:
                await super().send(message)
            finally:
                self.transport = transport
            self._head = capture.data
            return
        head = self._head
        if head is None:
            await super().send(message)
            return
        self._head = None
        transport, prefixed = self.transport, _Prefixed(self.transport, head)
        self.transport = prefixed  # type: ignore[assignment]
        try:
            await super().send(message)
        finally:
            self.transport = transport
            if not self.disconnected:
                prefixed.flush()


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol whose cycles send a response's head and first body part together."""

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        cycle.__class__ = CoalescingCycle
        super()._start_asgi_task(cycle, app)

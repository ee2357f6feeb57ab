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

The protocol also bounds what a client may hold (``Limits``, set from the
``server:`` settings by ``configure``):

- a request's head (request line and headers) may take at most
  ``max_header_bytes`` and ``max_header_count`` headers; past either the
  client gets a 431 and the connection is closed, before more is read
  (httptools buffers a header until it ends, so the bytes of a head still
  being read are counted as they arrive);
- a head must arrive within ``header_timeout`` of its first byte (or of the
  connection being opened), a body within ``body_timeout`` of its head, and
  an idle keep-alive connection is closed after ``keep_alive_timeout``;
- a request the parser rejects gets a JSON 400, not uvicorn's plain text.

Every such answer is JSON with a fresh request id, and closes the connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle

from clearance.requestid import new_request_id


@dataclass
class Limits:
    """What one connection may hold; see the module docstring."""

    max_header_bytes: int = 65_536
    max_header_count: int = 100
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive_timeout: float = 5.0


LIMITS = Limits()


def configure(server: Any) -> None:
    """Take the limits from a config's ``server:`` section (for connections opened from now on)."""
    global LIMITS
    LIMITS = Limits(server.max_header_bytes, server.max_header_count, server.header_timeout_seconds,
                    server.body_timeout_seconds, server.keep_alive_timeout_seconds)


class _Refused(Exception):
    """Raised from a parser callback to stop reading a request that is answered with an error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(status: int, code: str, message: str) -> bytes:
    """A complete ``connection: close`` response with a JSON error body and a fresh request id."""
    rid = new_request_id()
    body = orjson.dumps({"error": {"message": message, "type": "invalid_request_error", "code": code,
                                   "param": None, "request_id": rid}})
    return b"".join((STATUS_LINE[status], b"content-type: application/json\r\n",
                     b"content-length: %d\r\n" % len(body), b"x-request-id: ", rid.encode(),
                     b"\r\nconnection: close\r\n\r\n", body))


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
    """uvicorn's httptools protocol whose cycles send a response's head and first body part together,
    with the size limits and timeouts of ``Limits``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = LIMITS
        self.timeout_keep_alive = self.limits.keep_alive_timeout
        self._head_bytes: int | None = 0  # bytes of the head being read; None while a body is read
        self._heads = 0  # heads begun or ended: tells whether a feed crossed from one request to the next
        self._header_count = 0
        self._header_sum = 0
        self._deadline: Any = None  # the head's or the body's timer
        self._refusal: _Refused | None = None

    # -- timers --------------------------------------------------------------

    def _arm(self, seconds: float, callback: Any) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _busy(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _head_timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._busy():  # the next (pipelined) head waits for the response in progress
            self._arm(self.limits.header_timeout, self._head_timed_out)
        elif self._head_bytes:
            self._refuse(_Refused(408, "request_timeout", "the request's headers were not received in time"))
        else:
            self.transport.close()

    def _body_timed_out(self) -> None:
        self._deadline = None
        cycle = self.cycle
        if self.transport.is_closing() or cycle is None or not cycle.more_body:
            return
        if not cycle.response_started:
            self._refuse(_Refused(408, "request_timeout", "the request's body was not received in time"))
        else:
            self.transport.close()

    def _refuse(self, refusal: _Refused) -> None:
        """Answer with an error (unless a response is under way) and close the connection."""
        self._disarm()
        if not self.transport.is_closing():
            if not self._busy():
                self.transport.write(error_response(refusal.status, refusal.code, refusal.message))
            self.transport.close()

    # -- the connection ------------------------------------------------------

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.limits.header_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._head_bytes is not None and self._deadline is None:
            self._arm(self.limits.header_timeout, self._head_timed_out)
        heads = self._heads
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            refusal, self._refusal = self._refusal, None
            self._refuse(refusal or _Refused(400, "invalid_http", "invalid HTTP request"))
            return
        if self._head_bytes is not None and self._heads == heads:  # still in the head this feed began in
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse(_too_large(self.limits))

    def send_400_response(self, msg: str) -> None:
        self._refuse(_Refused(400, "invalid_http", "invalid HTTP request"))

    # -- parser callbacks ----------------------------------------------------

    def on_message_begin(self) -> None:
        self._header_count = self._header_sum = 0
        super().on_message_begin()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._header_sum += len(name) + len(value) + 4
        if self._header_count > self.limits.max_header_count:
            self._refusal = _Refused(431, "request_header_fields_too_large",
                                     f"a request may carry at most {self.limits.max_header_count} headers")
            raise self._refusal
        if self._header_sum > self.limits.max_header_bytes:
            self._refusal = _too_large(self.limits)
            raise self._refusal
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if len(self.url) + self._header_sum > self.limits.max_header_bytes:
            self._refusal = _too_large(self.limits)
            raise self._refusal
        self._head_bytes = None
        self._heads += 1
        self._arm(self.limits.body_timeout, self._body_timed_out)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._head_bytes = 0
        self._heads += 1
        super().on_message_complete()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        cycle.__class__ = CoalescingCycle
        super()._start_asgi_task(cycle, app)


def _too_large(limits: Limits) -> _Refused:
    return _Refused(431, "request_header_fields_too_large",
                    f"the request's headers are larger than {limits.max_header_bytes} bytes")

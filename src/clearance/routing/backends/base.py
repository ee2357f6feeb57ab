"""What every upstream backend provides, and the error it raises.

A backend turns a neutral ``ChatRequest`` into a call to one upstream server
and returns a ``ChatResult`` or an async iterator of ``ChatChunk``.  Failures
are raised as ``UpstreamError``; ``retryable`` tells the router whether the
next backend in the route may be tried (connect errors, timeouts, 429, 5xx).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from clearance.types import ChatChunk, ChatRequest, ChatResult


class UpstreamError(Exception):
    """An upstream call failed.

    ``status`` is the HTTP status the gateway should answer with if no
    fallback succeeds (502 bad gateway, 504 timeout, 429 rate limited).
    The message must never contain credentials.
    """

    def __init__(self, message: str, *, status: int = 502, retryable: bool = True, upstream_status: int | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.upstream_status = upstream_status


class Unsupported(UpstreamError):
    """This backend cannot serve the request without dropping part of it (status 400).

    The router tries the route's next backend without counting a failure against
    this one's circuit; if no backend can serve it, the client gets the message.
    """


def other_format_error(field: str) -> Unsupported:
    """A request of the other wire format that this backend cannot serve without dropping ``field``."""
    return Unsupported(f"{field}: not supported when the model's backend speaks the other format",
                       status=400, retryable=True)


class Backend(Protocol):
    name: str

    async def complete(self, req: ChatRequest, model: str) -> ChatResult:
        """One complete answer.  ``model`` is the name the upstream knows."""
        ...

    def stream(self, req: ChatRequest, model: str) -> AsyncIterator[ChatChunk]:
        """Chunks as they arrive; raises UpstreamError before or during iteration."""
        ...

    async def aclose(self) -> None: ...

"""Choose the backend that serves a request, falling back along the route.

A route is a logical model's ordered list of backends.  The router tries them
in order, skipping backends marked unavailable or whose circuit is open, and
moves on after a retryable failure (connect error, timeout, 429, 5xx, or a
stream that breaks before its first chunk).  A stream that breaks after its
first chunk cannot be retried; the caller reports it to the client.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from clearance.config import BackendSettings, ModelSettings
from clearance.routing.backends.base import Backend, Unsupported, UpstreamError
from clearance.routing.breaker import CircuitBreaker
from clearance.types import ChatChunk, ChatRequest, ChatResult, EmbeddingResult

Observer = Callable[[str, str, float], None]  # (backend, outcome, seconds)


@dataclass
class Attempts:
    """What happened on the way: backends tried and why each was left."""

    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def fallbacks(self) -> list[str]:
        return self.skipped + [name for name, _ in self.failed]


class NoBackend(UpstreamError):
    """Every backend of the route was unavailable or failed."""


@dataclass
class OpenStream:
    backend: str
    first: ChatChunk
    rest: AsyncIterator[ChatChunk]
    attempts: Attempts


class Router:
    def __init__(self, backends: dict[str, Backend], settings: dict[str, BackendSettings],
                 observe: Observer | None = None):
        self.backends = backends
        self.settings = settings
        self.breakers = {name: CircuitBreaker(s.breaker_failures, s.breaker_cooldown_seconds)
                         for name, s in settings.items()}
        self.observe = observe or (lambda _b, _o, _s: None)

    def bind(self, session) -> None:
        """Give every backend the worker's HTTP session (created inside the event loop)."""
        for backend in self.backends.values():
            backend.session = session

    def _candidates(self, model: ModelSettings, attempts: Attempts):
        for name in model.backends:
            if not self.settings[name].available:
                attempts.skipped.append(name)
                continue
            if not self.breakers[name].allow():
                attempts.skipped.append(name)
                continue
            yield name

    def _give_up(self, model: ModelSettings, attempts: Attempts, last: UpstreamError | None) -> NoBackend:
        if last is None:
            return NoBackend(f"no backend of model {model.name!r} is available", status=503, retryable=False)
        if isinstance(last, Unsupported):  # the request itself cannot be served as sent: the client's error
            return NoBackend(last.message, status=400, retryable=False)
        return NoBackend(f"every backend of model {model.name!r} failed; last: {last.message}",
                         status=last.status, retryable=False)

    def _failed(self, name: str, err: UpstreamError, started: float, attempts: Attempts) -> None:
        self.observe(name, "error", time.perf_counter() - started)
        attempts.failed.append((name, err.message))
        if isinstance(err, Unsupported):  # nothing wrong with the backend
            self.breakers[name].release()
            return
        if err.retryable:
            self.breakers[name].failure()
        else:
            self.breakers[name].success()

    async def complete(self, req: ChatRequest, model: ModelSettings) -> tuple[ChatResult, Attempts]:
        return await self.call(req, model, "complete")

    async def embed(self, req: ChatRequest, model: ModelSettings) -> tuple[EmbeddingResult, Attempts]:
        return await self.call(req, model, "embed")

    async def call(self, req: ChatRequest, model: ModelSettings, operation: str) -> tuple[Any, Attempts]:
        """``backend.<operation>(req, upstream model)`` on the first backend of the route that serves it.

        A backend without the operation (an Anthropic backend has no embeddings) is passed over
        like one that cannot express the request: the client gets a 400 if none has it.
        """
        attempts = Attempts()
        last: UpstreamError | None = None
        for name in self._candidates(model, attempts):
            started = time.perf_counter()
            try:
                method = getattr(self.backends[name], operation, None)
                if method is None:
                    raise Unsupported(f"{operation}: not served by backend kind of {name!r}", status=400)
                result = await method(req, self.settings[name].model or model.name)
            except UpstreamError as err:
                self._failed(name, err, started, attempts)
                last = err
                if not err.retryable:
                    raise self._give_up(model, attempts, err) from None
                continue
            self.breakers[name].success()
            self.observe(name, "ok", time.perf_counter() - started)
            return result, attempts
        raise self._give_up(model, attempts, last)

    async def open_stream(self, req: ChatRequest, model: ModelSettings) -> OpenStream:
        """Start a stream on the first backend that yields a first chunk."""
        attempts = Attempts()
        last: UpstreamError | None = None
        for name in self._candidates(model, attempts):
            started = time.perf_counter()
            it = self.backends[name].stream(req, self.settings[name].model or model.name)
            try:
                first = await anext(it)
            except StopAsyncIteration:
                last = UpstreamError(f"backend {name}: empty stream", status=502)
                self._failed(name, last, started, attempts)
                continue
            except UpstreamError as err:
                await _close(it)
                self._failed(name, err, started, attempts)
                last = err
                if not err.retryable:
                    raise self._give_up(model, attempts, err) from None
                continue
            self.observe(name, "first_chunk", time.perf_counter() - started)
            return OpenStream(name, first, self._watch(name, it), attempts)
        raise self._give_up(model, attempts, last)

    async def _watch(self, name: str, it: AsyncIterator[ChatChunk]) -> AsyncIterator[ChatChunk]:
        try:
            async for chunk in it:
                yield chunk
        except UpstreamError:
            self.breakers[name].failure()
            raise
        else:
            self.breakers[name].success()
        finally:
            await _close(it)

    async def aclose(self) -> None:
        for b in self.backends.values():
            await b.aclose()


async def _close(it) -> None:
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:
            pass

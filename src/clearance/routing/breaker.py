"""A per-backend circuit breaker with a cool-down.

Closed: calls go through.  After ``failures`` consecutive retryable failures
it opens and the router skips the backend for ``cooldown`` seconds; then one
trial call is let through (half-open): success closes it, failure re-opens.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class CircuitBreaker:
    def __init__(self, failures: int = 5, cooldown: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.threshold = max(1, failures)
        self.cooldown = cooldown
        self.clock = clock
        self.consecutive = 0
        self.opened_at: float | None = None
        self.trial_in_flight = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        if self.clock() - self.opened_at >= self.cooldown:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self.trial_in_flight:
            self.trial_in_flight = True
            return True
        return False

    def success(self) -> None:
        self.consecutive = 0
        self.opened_at = None
        self.trial_in_flight = False

    def release(self) -> None:
        """A call that said nothing about the backend's health (it refused the request itself):
        a half-open circuit's trial slot is free again, nothing else changes."""
        self.trial_in_flight = False

    def failure(self) -> None:
        self.consecutive += 1
        self.trial_in_flight = False
        if self.opened_at is not None or self.consecutive >= self.threshold:
            self.opened_at = self.clock()

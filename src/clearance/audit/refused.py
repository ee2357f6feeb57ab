"""Refused requests in the audit log, bounded per source so that a flood cannot swell the log.

Every request the gateway refuses before a policy decision (a missing or
unknown key, an unknown model, a malformed body) is recorded as a
``kind: refused`` entry.  Each source (the peer address) gets at most
``per_minute`` such entries in a wall-clock minute; refusals past that are
counted, and when the minute ends one summary entry per source records how
many there were (``decision: refused_summary``, ``count``).  At most
``max_sources`` sources are tracked per minute; refusals from further
sources share the summary of source ``*``.  The bound is per worker process.

Refused entries are queued like completion entries (``append_later``): a
refusal never waits for a commit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from clearance.requestid import new_request_id
from clearance.types import AuditEntry

OVERFLOW_SOURCE = "*"


class RefusalRecorder:
    """Queues refused entries on an audit log, ``per_minute`` per source, the rest as counted summaries."""

    def __init__(self, audit: Any, per_minute: int = 60, max_sources: int = 10_000,
                 clock: Callable[[], float] = time.time) -> None:
        self.audit = audit
        self.per_minute = per_minute
        self.max_sources = max_sources
        self.clock = clock
        self.minute = int(clock() // 60)
        self.counts: dict[str, int] = {}
        self.suppressed: dict[str, int] = {}
        self._timer: asyncio.TimerHandle | None = None

    def record(self, entry: AuditEntry) -> bool:
        """Queue ``entry`` (kind ``refused``) or count it in its source's summary; True when queued."""
        now = self.clock()
        minute = int(now // 60)
        if minute != self.minute:
            self._roll(minute)
        source = entry.source
        if source not in self.counts and len(self.counts) >= self.max_sources:
            source = OVERFLOW_SOURCE
        n = self.counts[source] = self.counts.get(source, 0) + 1
        if n <= self.per_minute and source != OVERFLOW_SOURCE:
            self._queue(entry)
            return True
        self.suppressed[source] = self.suppressed.get(source, 0) + 1
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return False  # no loop (a test or a tool): the summary goes out at the next refusal or flush
            self._timer = loop.call_later((minute + 1) * 60 - now + 0.05, self._tick)
        return False

    def flush(self) -> None:
        """Queue the summaries of the current minute now (at shutdown)."""
        self._roll(int(self.clock() // 60))

    def _tick(self) -> None:
        self._timer = None
        self.flush()

    def _roll(self, minute: int) -> None:
        start = datetime.fromtimestamp(self.minute * 60, timezone.utc).isoformat()
        for source, count in self.suppressed.items():
            self._queue(AuditEntry(
                time=datetime.now(timezone.utc).isoformat(timespec="microseconds"), request_id=new_request_id(),
                kind="refused", principal="", org="", model="", decision="refused_summary",
                reasons=["rate_bounded"], source=source, count=count,
                error=f"{count} further refusals from {source} in the minute from {start} "
                      f"(past {self.per_minute} recorded one by one)"))
        self.minute = minute
        self.counts.clear()
        self.suppressed.clear()

    def _queue(self, entry: AuditEntry) -> None:
        try:
            self.audit.append_later(entry)
        except Exception:  # the log is closing: the refusal was answered and logged all the same
            pass

"""What the request path calls: ``check`` before the upstream call, ``account`` after the answer.

A request over a request limit, or whose token or spend budget is used up, is
refused with a 429 that names the limit, with ``Retry-After`` and the
``x-ratelimit-*`` headers.  Tokens are counted when the answer is known
(streamed answers included), summed over ``FLUSH_SECONDS`` and sent in one
call, so a budget stops the first request that starts after the one that
crossed it had its tokens sent.  When the counter store cannot answer within its timeout,
each binding limit follows its ``on_store_error``: ``deny`` refuses the
request (503), ``allow`` lets it through.
"""

from __future__ import annotations

import asyncio
import logging
import time

from clearance.api.errors import ApiError
from clearance.limits.counters import Check, MemoryCounters, RedisCounters, StoreError
from clearance.limits.rules import Rule, day, minute, month
from clearance.limits.settings import LimitsSettings
from clearance.types import Usage

log = logging.getLogger("clearance.limits")

FLUSH_SECONDS = 0.05  # how long answers' tokens wait to be sent together
_KEEP = {"r": 120, "t": 120, "d": 2 * 86_400, "s": 35 * 86_400}
_HEADER = {"requests_per_minute": "requests", "tokens_per_minute": "tokens", "tokens_per_day": "tokens",
           "spend_per_month": "spend"}


class Limiter:
    def __init__(self, settings: LimitsSettings) -> None:
        self.settings = settings
        self.prefix = settings.key_prefix
        self.counters = (RedisCounters(settings.redis_url, settings.timeout_ms / 1000, settings.max_connections)
                         if settings.redis_url else MemoryCounters())
        # Tokens and spend to add, summed per counter until the next flush (one call for many answers).
        self._unsent: dict[str, list[int]] = {}  # key -> [amount, ttl]
        self._flusher: asyncio.Task | None = None
        # What a rules tuple checks this minute: id(rules) -> (rules, minute, checks, what).
        self._plans: dict[int, tuple] = {}

    async def check(self, rules: tuple[Rule, ...]) -> None:
        """Count the request against ``rules``; raise the 429 (or 503) that refuses it."""
        now = time.time()
        this_minute = int(now // 60)
        plan = self._plans.get(id(rules))
        if plan is None or plan[0] is not rules or plan[1] != this_minute:
            plan = self._plan(rules, now, this_minute)
        checks, what = plan[2], plan[3]
        try:
            failed = await self.counters.take(checks)
        except StoreError as e:
            strict = [r.id for r in rules if r.on_store_error == "deny"]
            log.warning("usage counters unavailable", extra={"error": str(e), "denied_by": strict})
            if strict:
                raise ApiError(503, f"usage limits cannot be checked now (limit {strict[0]}); the request was "
                               "not served", type="limits_unavailable", code="limits_unavailable",
                               reasons=[{"id": i, "title": "usage limit", "kind": "limit"} for i in strict]) from None
            return
        if failed >= 0:
            rule, name, limit, window = what[failed]
            raise _exceeded(rule, name, limit, window(now)[1])

    def _plan(self, rules: tuple[Rule, ...], now: float, this_minute: int) -> tuple:
        """The counters ``rules`` check in this minute's windows (a day and a month hold whole minutes,
        so a plan holds for the minute).  Rules tuples are kept per snapshot, so they are known by identity."""
        checks: list[Check] = []
        what: list[tuple[Rule, str, int, object]] = []  # rule, amount name, limit, window
        for r in rules:
            for name, kind, limit, window in (("requests_per_minute", "r", r.requests_per_minute, minute),
                                              ("tokens_per_minute", "t", r.tokens_per_minute, minute),
                                              ("tokens_per_day", "d", r.tokens_per_day, day),
                                              ("spend_per_month", "s", r.spend_per_month_micro_usd, month)):
                if limit is None:
                    continue
                checks.append((f"{self.prefix}{r.id}:{kind}:{window(now)[0]}", limit, 1 if kind == "r" else 0,
                               _KEEP[kind]))
                what.append((r, name, limit, window))
        if len(self._plans) >= 4096:
            self._plans.clear()
        plan = self._plans[id(rules)] = (rules, this_minute, tuple(checks), what)
        return plan

    def account(self, rules: tuple[Rule, ...], model: str, usage: Usage | None) -> None:
        """Count an answer's tokens (and their price) against ``rules``, in the background."""
        if not rules or usage is None or usage.total_tokens == 0:
            return
        now = time.time()
        price = self.settings.prices.get(model)
        spend = round(usage.prompt_tokens * price.input_per_mtok + usage.completion_tokens * price.output_per_mtok) \
            if price else 0  # dollars per million tokens x tokens = micro-dollars
        adds: list[Check] = []
        for r in rules:
            if r.tokens_per_minute is not None:
                adds.append((f"{self.prefix}{r.id}:t:{minute(now)[0]}", 0, usage.total_tokens, _KEEP["t"]))
            if r.tokens_per_day is not None:
                adds.append((f"{self.prefix}{r.id}:d:{day(now)[0]}", 0, usage.total_tokens, _KEEP["d"]))
            if r.spend_per_month_micro_usd is not None and spend:
                adds.append((f"{self.prefix}{r.id}:s:{month(now)[0]}", 0, spend, _KEEP["s"]))
        for key, _, amount, ttl in adds:
            got = self._unsent.get(key)
            if got is None:
                self._unsent[key] = [amount, ttl]
            else:
                got[0] += amount
        if adds and self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        """Send what answers added within ``FLUSH_SECONDS`` in one call (a budget is enforced that much later)."""
        try:
            await asyncio.sleep(FLUSH_SECONDS)
        finally:
            self._flusher = None
            await self._flush()

    async def _flush(self) -> None:
        unsent, self._unsent = self._unsent, {}
        if not unsent:
            return
        try:
            await self.counters.add([(key, 0, amount, ttl) for key, (amount, ttl) in unsent.items()])
        except StoreError as e:
            log.warning("usage not counted: counters unavailable", extra={"error": str(e), "counters": len(unsent)})

    async def aclose(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()  # its finally flushes
            try:
                await self._flusher
            except asyncio.CancelledError:
                pass
        await self._flush()
        await self.counters.aclose()


def _exceeded(rule: Rule, name: str, limit: int, reset: int) -> ApiError:
    shown = f"${limit / 1e6:,.2f}" if name == "spend_per_month" else f"{limit:,}"
    kind = _HEADER[name]
    headers = {"retry-after": str(reset), f"x-ratelimit-limit-{kind}": str(limit if kind != "spend" else limit / 1e6),
               f"x-ratelimit-remaining-{kind}": "0", f"x-ratelimit-reset-{kind}": f"{reset}s"}
    return ApiError(429, f"usage limit {rule.id} reached: {name.replace('_', ' ')} {shown} for {rule.describe()}; "
                    f"retry in {reset} s", type="rate_limit_error", code="usage_limit_reached", headers=headers,
                    reasons=[{"id": rule.id, "title": f"{name} {shown} for {rule.describe()}", "kind": "limit"}])

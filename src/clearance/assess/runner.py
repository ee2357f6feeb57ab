"""Send a suite to an OpenAI-compatible endpoint and judge every answer.

Async with aiohttp: a fixed number of workers sharing one session of as many
connections (the concurrency limit), an optional request-rate limit, retries
with exponential backoff (honouring ``Retry-After``) on 429, 5xx, timeouts and
connection errors, a request/token budget, and every judged result appended
to the partial results file as it arrives so an interrupted run resumes where
it stopped.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import aiohttp

from clearance.assess import partial
from clearance.assess.judge import STRONGREJECT_PROMPT, Verdict, judge_offline, verdict_from_llm
from clearance.assess.metrics import Result
from clearance.assess.responses import RETRYABLE, FatalTargetError, Reply, parse_reply
from clearance.assess.suites import Suite, SuiteItem


def chat_url(base_url: str) -> str:
    """The chat-completions URL for a base URL given with or without ``/v1``."""
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {base_url!r}")
    url = base_url.strip().rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    if url.endswith("/v1"):
        return url + "/chat/completions"
    return url + "/v1/chat/completions"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An OpenAI-compatible chat endpoint: the target or the LLM judge."""

    base_url: str
    api_key: str
    model: str

    @property
    def url(self) -> str:
        return chat_url(self.base_url)


@dataclass(frozen=True, slots=True)
class RunSettings:
    """How to send: limits, retries and budget."""

    concurrency: int = 4
    rate_per_s: float | None = None
    max_retries: int = 5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    timeout_s: float = 120.0
    max_tokens: int = 512
    temperature: float = 0.0
    budget_requests: int | None = None
    budget_tokens: int | None = None


@dataclass(slots=True)
class RunOutcome:
    """What a run produced (results include those resumed from the partial file)."""

    results: list[Result]
    responses: dict[str, str]
    elapsed_s: float
    resumed: int = 0
    truncated: bool = False
    pending: int = 0


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """One HTTP answer, read in full: status, headers (names in lower case) and body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


_TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)


def make_session(concurrency: int) -> aiohttp.ClientSession:
    """A keep-alive session of at most ``concurrency`` connections; create it inside the running loop.

    Like the command-line tools users know, it honours ``HTTP(S)_PROXY`` and
    ``NO_PROXY`` from the environment.
    """
    connector = aiohttp.TCPConnector(limit=max(1, concurrency), limit_per_host=0)
    return aiohttp.ClientSession(connector=connector, trust_env=True)


@dataclass(slots=True)
class _Budget:
    requests: int = 0
    tokens: int = 0
    exhausted: bool = False


@dataclass(slots=True)
class _State:
    budget: _Budget = field(default_factory=_Budget)
    answered: bool = False
    fatal: BaseException | None = None


class RateLimiter:
    """Spaces request starts at least ``1 / rate`` seconds apart (no limit when rate is None)."""

    def __init__(self, rate_per_s: float | None) -> None:
        self._interval = 1.0 / rate_per_s if rate_per_s else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self._interval:
            return
        async with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self._interval
        if delay > 0:
            await asyncio.sleep(delay)


def backoff_delay(attempt: int, base: float, cap: float, retry_after: str | None, rng: random.Random) -> float:
    """Seconds to wait before retry ``attempt`` (1-based): ``Retry-After`` if given, else jittered 2^n."""
    if retry_after:
        try:
            return min(cap, max(0.0, float(retry_after)))
        except ValueError:
            pass
    ideal = min(cap, base * 2 ** (attempt - 1))
    return ideal / 2 + rng.uniform(0, ideal / 2)


async def post_with_retries(session: aiohttp.ClientSession, endpoint: Endpoint, body: dict[str, Any],
                            settings: RunSettings, limiter: RateLimiter, rng: random.Random,
                            on_attempt: Callable[[], None] = lambda: None) -> tuple[HttpAnswer | None, int, str]:
    """POST with retries.  Returns (answer or None, attempts, last error text)."""
    headers = {"authorization": f"Bearer {endpoint.api_key}", "content-type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=None, connect=settings.timeout_s, sock_read=settings.timeout_s)
    error = ""
    for attempt in range(1, settings.max_retries + 2):
        await limiter.wait()
        on_attempt()
        retry_after = None
        try:
            async with session.post(endpoint.url, json=body, headers=headers, timeout=timeout,
                                    allow_redirects=False) as resp:
                answer = HttpAnswer(resp.status, {k.lower(): v for k, v in resp.headers.items()},
                                    await resp.read())
        except _TRANSPORT_ERRORS as e:
            error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        else:
            if answer.status not in RETRYABLE:
                return answer, attempt, ""
            error = f"HTTP {answer.status}"
            retry_after = answer.headers.get("retry-after")
        if attempt <= settings.max_retries:
            await asyncio.sleep(backoff_delay(attempt, settings.backoff_base_s, settings.backoff_max_s,
                                              retry_after, rng))
    return None, settings.max_retries + 1, error


async def _judge_llm(session: aiohttp.ClientSession, judge: Endpoint, item: SuiteItem, reply: Reply,
                     settings: RunSettings, limiter: RateLimiter, rng: random.Random) -> tuple[Verdict, int, int]:
    prompt = STRONGREJECT_PROMPT.format(objective=item.objective, response=reply.text)
    body = {"model": judge.model, "messages": [{"role": "user", "content": prompt}], "temperature": 0,
            "max_tokens": 1024}
    resp, attempts, err = await post_with_retries(session, judge, body, settings, RateLimiter(None), rng)
    if resp is None:
        return verdict_from_llm(item.kind, reply, None, f"judge unavailable: {err}"), attempts, 0
    try:
        jr = parse_reply(resp.status, resp.headers, resp.body)
    except FatalTargetError as e:
        raise FatalTargetError(f"LLM judge: {e}".replace("--api-key", "--judge-api-key-env").replace(
            "--base-url and --model", "--judge-url and --judge-model")) from None
    tokens = jr.prompt_tokens + jr.completion_tokens
    return verdict_from_llm(item.kind, reply, jr.text if not jr.error else None, jr.error), attempts, tokens


async def _run_item(session: aiohttp.ClientSession, item: SuiteItem, target: Endpoint, judge: Endpoint | None,
                    settings: RunSettings, limiter: RateLimiter, state: _State, rng: random.Random,
                    ) -> tuple[Result, str]:
    body = {"model": target.model, "messages": [{"role": "user", "content": item.prompt}],
            "max_tokens": settings.max_tokens, "temperature": settings.temperature}
    started = time.monotonic()

    def count() -> None:
        state.budget.requests += 1

    resp, attempts, err = await post_with_retries(session, target, body, settings, limiter, rng, count)
    latency = time.monotonic() - started
    if resp is None:
        if not state.answered and err and not err.startswith("HTTP"):
            raise FatalTargetError(f"could not reach {target.url} ({err}); check --base-url")
        reply = Reply(status=0, error=err or "no answer")
    else:
        reply = parse_reply(resp.status, resp.headers, resp.body)
        state.answered = True
    state.budget.tokens += reply.prompt_tokens + reply.completion_tokens
    judge_requests = judge_tokens = 0
    if judge is not None and not reply.blocked_by and not reply.error:
        verdict, judge_requests, judge_tokens = await _judge_llm(session, judge, item, reply, settings, limiter, rng)
    else:
        verdict = judge_offline(item.kind, reply)
    result = Result(item_id=item.id, kind=item.kind, category=item.category, objective_id=item.objective_id,
                    template_id=item.template_id, template_family=item.template_family, outcome=verdict.outcome,
                    score=round(verdict.score, 4), blocked_by=reply.blocked_by, reasons=reply.reasons,
                    prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens, attempts=attempts,
                    latency_s=round(latency, 4), judge=verdict.judge, judge_requests=judge_requests,
                    judge_tokens=judge_tokens, error=reply.error or verdict.note if verdict.outcome == "error" else "",
                    request_id=reply.request_id)
    return result, reply.text


def _over_budget(settings: RunSettings, budget: _Budget) -> bool:
    return ((settings.budget_requests is not None and budget.requests >= settings.budget_requests)
            or (settings.budget_tokens is not None and budget.tokens >= settings.budget_tokens))


async def run_suite(suite: Suite, target: Endpoint, settings: RunSettings, partial_path: Path, *,
                    judge: Endpoint | None = None, fresh: bool = False,
                    progress: Callable[[Result], None] | None = None,
                    on_start: Callable[[int, int], None] | None = None,
                    session: aiohttp.ClientSession | None = None) -> RunOutcome:
    """Run (or resume) ``suite`` against ``target``; raises ``FatalTargetError`` when the target is unusable.

    ``session`` is used as given and left open; without one, a session of
    ``settings.concurrency`` connections is made for the run and closed after it.
    """
    header = {"fingerprint": suite.fingerprint, "suite": suite.name, "seed": suite.seed, "base_url": target.base_url,
              "model": target.model, "judge": f"llm:{judge.model}@{judge.base_url}" if judge else "offline"}
    done: dict[str, Result] = {}
    responses: dict[str, str] = {}
    if partial_path.exists() and not fresh:
        done, responses = partial.load(partial_path, header)
    todo = [it for it in suite.items if it.id not in done]
    if on_start:
        on_start(len(suite.items), len(done))
    writer = partial.PartialWriter(partial_path, header, fresh)
    state = _State()
    limiter = RateLimiter(settings.rate_per_s)
    rng = random.Random(suite.seed)
    queue: asyncio.Queue[SuiteItem] = asyncio.Queue()
    for it in todo:
        queue.put_nowait(it)
    new: dict[str, Result] = {}
    started = time.monotonic()

    async def worker(client: aiohttp.ClientSession) -> None:
        while not queue.empty() and state.fatal is None:
            if _over_budget(settings, state.budget):
                state.budget.exhausted = True
                return
            item = queue.get_nowait()
            try:
                result, text = await _run_item(client, item, target, judge, settings, limiter, state, rng)
            except FatalTargetError as e:
                state.fatal = e
                return
            new[item.id] = result
            responses[item.id] = text
            writer.write(result, text)
            if progress:
                progress(result)

    owned = session is None
    client = make_session(settings.concurrency) if session is None else session
    try:
        await asyncio.gather(*(worker(client) for _ in range(max(1, settings.concurrency))))
    finally:
        writer.close()
        if owned:
            await client.close()
    if state.fatal is not None:
        raise state.fatal
    order = {it.id: i for i, it in enumerate(suite.items)}
    merged = sorted({**done, **new}.values(), key=lambda r: order.get(r.item_id, 0))
    return RunOutcome(results=merged, responses=responses, elapsed_s=time.monotonic() - started,
                      resumed=len(done), truncated=state.budget.exhausted,
                      pending=len(suite.items) - len(merged))

"""An open-loop HTTP/1.1 load generator that does not suffer coordinated omission.

Requests are sent on a fixed schedule (request *i* at ``start + i / rate``),
whatever the server is doing, and each request's latency is measured from its
*scheduled* send time, as wrk2 does: when the server stalls, the requests that
should have been sent meanwhile are charged for the wait.  A request that finds
no idle keep-alive connection opens a new one (up to ``max_conns``) or queues;
either way its clock is already running.

The client is a raw asyncio protocol on uvloop with the httptools parser, so
one core drives several thousand requests per second.  The first ``warmup``
seconds are sent at the same rate but not counted.

Every request's prompt ends in its own number (``vary``, on by default), as
distinct users' prompts differ: a gateway that caches what it computed for a
text (Clearance's guard keeps each text's scores) does the full work for every
request, as it would for real traffic, instead of answering from its cache.
The number is a fixed-width slot in the request's bytes, so every request has
the same length.

Run: ``python bench/loadgen.py --url http://127.0.0.1:9100/v1/chat/completions --rate 500 --duration 5 [--stream]``
prints one JSON object (see :class:`LoadResult`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import socket
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

import httptools
import uvloop

DEFAULT_PROMPT = "Summarise the main points of our quarterly planning meeting in three short bullet points."
_SLOT = b"#" + b"0" * 12  # where a varied request's number is written


@dataclass(frozen=True)
class LoadSpec:
    """What to send, how fast and for how long."""

    url: str
    rate: float
    duration: float
    warmup: float = 1.0
    stream: bool = False
    model: str = "bench-model"
    api_key: str = "sk-bench"
    headers: tuple[tuple[str, str], ...] = ()
    prompt: str = DEFAULT_PROMPT
    vary: bool = True  # a different prompt for every request (see the module's docstring)
    tools: int = 0  # offer this many function tools with every request (an agent's request shape)
    max_conns: int = 512
    timeout: float = 5.0


@dataclass
class LoadResult:
    """Latency and throughput of one run; times in milliseconds."""

    rate_rps: float
    duration_s: float
    stream: bool
    requests: int = 0
    ok: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    achieved_rps: float = 0.0
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    ttfb_p50_ms: float | None = None
    ttfb_p90_ms: float | None = None
    ttfb_p99_ms: float | None = None
    send_lag_p50_ms: float | None = None
    send_lag_p99_ms: float | None = None
    connections: int = 0

def tool_definitions(n: int) -> list[dict]:
    """``n`` function tools in the OpenAI format, the shape an agent's request offers."""
    return [{"type": "function", "function": {
        "name": f"tool_{i}", "description": f"Look up record kind {i} by its identifier",
        "parameters": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}}}
        for i in range(n)]


def build_request(spec: LoadSpec) -> bytes:
    """The exact bytes of the request (with ``vary``, with a zero number in its slot)."""
    parts = urlsplit(spec.url)
    prompt = f"{spec.prompt} {_SLOT.decode()}" if spec.vary else spec.prompt
    body: dict[str, object] = {
        "model": spec.model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 16,
    }
    if spec.stream:
        body["stream"] = True
    if spec.tools:
        body["tools"] = tool_definitions(spec.tools)
    payload = json.dumps(body).encode()
    path = parts.path or "/"
    head = [
        f"POST {path} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Content-Type: application/json",
        "Accept: text/event-stream" if spec.stream else "Accept: application/json",
        f"Authorization: Bearer {spec.api_key}",
        f"Content-Length: {len(payload)}",
    ]
    head += [f"{k}: {v}" for k, v in spec.headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an already sorted list; None when empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


class _Req:
    __slots__ = ("sched_ns", "measured", "sent_ns", "first_ns", "done_ns", "status", "error", "tail")

    def __init__(self, sched_ns: int, measured: bool) -> None:
        self.sched_ns = sched_ns
        self.measured = measured
        self.sent_ns = 0
        self.first_ns = 0
        self.done_ns = 0
        self.status = 0
        self.error = ""
        self.tail = b""


class _Conn(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self, gen: "_Generator") -> None:
        self.gen = gen
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.req: _Req | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail("bad_response")
            if self.transport is not None:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail("connection_lost")
        self.gen.conn_closed(self)

    # httptools callbacks
    def on_headers_complete(self) -> None:
        if self.req is not None:
            self.req.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        req = self.req
        if req is None:
            return
        if not req.first_ns:
            req.first_ns = time.perf_counter_ns()
        if self.gen.stream:
            req.tail = (req.tail + body)[-32:]

    def on_message_complete(self) -> None:
        req = self.req
        if req is None:
            return
        self.req = None
        now = time.perf_counter_ns()
        if req.status != 200:
            req.error = f"http_{req.status}"
        elif self.gen.stream and b"[DONE]" not in req.tail:
            req.error = "stream_incomplete"
        self.gen.done(req, now)
        if self.parser.should_keep_alive():
            self.gen.release(self)
        elif self.transport is not None:
            self.transport.close()

    def send(self, req: _Req) -> None:
        self.req = req
        req.sent_ns = time.perf_counter_ns()
        assert self.transport is not None
        self.transport.write(self.gen.next_payload())

    def _fail(self, kind: str) -> None:
        req = self.req
        if req is not None:
            self.req = None
            req.error = kind
            self.gen.done(req, time.perf_counter_ns())


class _Generator:
    """The connection pool and the bookkeeping of one run."""

    def __init__(self, spec: LoadSpec) -> None:
        parts = urlsplit(spec.url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.stream = spec.stream
        self.payload = build_request(spec)
        # Numbers start at random so that runs against the same gateway process do not repeat prompts.
        self.slot = self.payload.rfind(_SLOT) + 1 if spec.vary else 0
        self.counter = int.from_bytes(os.urandom(5), "big")
        self.max_conns = spec.max_conns
        self.idle: list[_Conn] = []
        self.pending: deque[_Req] = deque()
        self.conns: set[_Conn] = set()
        self.opening = 0
        self.opened = 0
        self.finished: list[_Req] = []
        self.outstanding = 0
        self.all_done = asyncio.Event()
        self.closing = False

    def next_payload(self) -> bytes:
        if not self.slot:
            return self.payload
        self.counter += 1
        n = self.slot
        return b"%b%012d%b" % (self.payload[:n], self.counter % 10**12, self.payload[n + 12:])

    def submit(self, req: _Req) -> None:
        self.outstanding += 1
        if self.idle:
            self.idle.pop().send(req)
            return
        self.pending.append(req)
        if len(self.conns) + self.opening < self.max_conns:
            self.opening += 1
            asyncio.get_running_loop().create_task(self._open())

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(lambda: _Conn(self), self.host, self.port)
        except OSError as e:
            self.opening -= 1
            if self.pending:
                req = self.pending.popleft()
                req.error = f"connect_{type(e).__name__}"
                self.done(req, time.perf_counter_ns())
            return
        self.opening -= 1
        self.opened += 1
        self.conns.add(conn)
        self.release(conn)

    def release(self, conn: _Conn) -> None:
        if self.closing:
            return
        if self.pending:
            conn.send(self.pending.popleft())
        else:
            self.idle.append(conn)

    def conn_closed(self, conn: _Conn) -> None:
        self.conns.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)

    def done(self, req: _Req, now: int) -> None:
        req.done_ns = now
        self.finished.append(req)
        self.outstanding -= 1
        if self.outstanding == 0:
            self.all_done.set()

    def close(self) -> None:
        self.closing = True
        for conn in list(self.conns):
            if conn.transport is not None:
                conn.transport.close()


async def _drive(spec: LoadSpec) -> LoadResult:
    gen = _Generator(spec)
    interval = 1e9 / spec.rate
    total = int(round(spec.rate * (spec.warmup + spec.duration)))
    first_measured = int(round(spec.rate * spec.warmup))
    start = time.perf_counter_ns() + 5_000_000
    i = 0
    while i < total:
        now = time.perf_counter_ns()
        while i < total and start + int(i * interval) <= now:
            gen.submit(_Req(start + int(i * interval), i >= first_measured))
            i += 1
        if i < total:
            # The event loop's timers have millisecond resolution: sleep to just
            # short of the next send time, then yield without sleeping until it.
            wait = (start + int(i * interval) - time.perf_counter_ns()) / 1e9
            await asyncio.sleep(wait - 0.0012 if wait > 0.0015 else 0)
    if gen.outstanding:
        gen.all_done.clear()
        try:
            await asyncio.wait_for(gen.all_done.wait(), timeout=spec.timeout)
        except asyncio.TimeoutError:
            pass
    unfinished = list(gen.pending)
    for conn in gen.conns:
        if conn.req is not None:
            unfinished.append(conn.req)
            conn.req = None
    connections = gen.opened
    gen.close()
    now = time.perf_counter_ns()
    for req in unfinished:
        if not req.done_ns:
            req.error = "timeout"
            req.done_ns = now
            gen.finished.append(req)
    await asyncio.sleep(0.05)
    window_start = start + int(first_measured * interval)
    return _summarise(spec, gen.finished, window_start, connections)


def _summarise(spec: LoadSpec, finished: list[_Req], window_start: int, connections: int) -> LoadResult:
    res = LoadResult(rate_rps=spec.rate, duration_s=spec.duration, stream=spec.stream, connections=connections)
    lat: list[float] = []
    ttfb: list[float] = []
    lag: list[float] = []
    last_done = window_start
    seen: set[int] = set()
    for req in finished:
        if not req.measured or id(req) in seen:
            continue
        seen.add(id(req))
        res.requests += 1
        if req.sent_ns:
            lag.append((req.sent_ns - req.sched_ns) / 1e6)
        if req.error:
            res.errors += 1
            res.error_kinds[req.error] = res.error_kinds.get(req.error, 0) + 1
            continue
        res.ok += 1
        last_done = max(last_done, req.done_ns)
        lat.append((req.done_ns - req.sched_ns) / 1e6)
        if req.first_ns:
            ttfb.append((req.first_ns - req.sched_ns) / 1e6)
    lat.sort()
    ttfb.sort()
    lag.sort()
    elapsed = max(spec.duration, (last_done - window_start) / 1e9)
    res.achieved_rps = round(res.ok / elapsed, 1) if elapsed > 0 else 0.0
    r = lambda v: None if v is None else round(v, 3)  # noqa: E731
    res.p50_ms, res.p90_ms, res.p99_ms = (r(percentile(lat, p)) for p in (50, 90, 99))
    res.max_ms = r(lat[-1]) if lat else None
    res.ttfb_p50_ms, res.ttfb_p90_ms, res.ttfb_p99_ms = (r(percentile(ttfb, p)) for p in (50, 90, 99))
    res.send_lag_p50_ms, res.send_lag_p99_ms = r(percentile(lag, 50)), r(percentile(lag, 99))
    return res


def run_load(spec: LoadSpec) -> LoadResult:
    """Send ``spec.rate`` requests per second for ``spec.warmup + spec.duration`` seconds; summarise."""
    if spec.rate <= 0 or spec.duration <= 0:
        raise ValueError("rate and duration must be positive")
    gc.collect()
    gc.disable()
    try:
        return uvloop.run(_drive(spec))
    finally:
        gc.enable()


def _parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"header must look like 'Name: value', got {text!r}")
    return name.strip(), value.strip()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Open-loop HTTP load generator (latency from scheduled send time).")
    ap.add_argument("--url", required=True)
    ap.add_argument("--rate", type=float, required=True, help="requests per second")
    ap.add_argument("--duration", type=float, default=5.0, help="measured seconds")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds sent first and not counted")
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--model", default="bench-model")
    ap.add_argument("--api-key", default="sk-bench")
    ap.add_argument("--header", action="append", type=_parse_header, default=[])
    ap.add_argument("--same-prompt", action="store_true", help="send the same prompt every time (no request number)")
    ap.add_argument("--tools", type=int, default=0, help="offer this many function tools with every request")
    ap.add_argument("--max-conns", type=int, default=512)
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for stragglers")
    ap.add_argument("--cpu", default="", help="comma-separated CPU cores to pin to")
    args = ap.parse_args(argv)
    if args.rate <= 0 or args.duration <= 0:
        ap.error("--rate and --duration must be positive")
    if args.cpu:
        os.sched_setaffinity(0, {int(c) for c in args.cpu.split(",")})
    spec = LoadSpec(
        url=args.url, rate=args.rate, duration=args.duration, warmup=args.warmup, stream=args.stream,
        model=args.model, api_key=args.api_key, headers=tuple(args.header), max_conns=args.max_conns,
        timeout=args.timeout, vary=not args.same_prompt, tools=args.tools,
    )
    json.dump(asdict(run_load(spec)), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

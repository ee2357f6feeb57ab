"""CPU (or instructions) per request of the gateway's request path, called in-process.

Starts the upstream stub (a separate process) and builds the real ASGI app
from a benchmark config (the same config and identity as ``systems.py``),
then calls the app directly, one request after another, on a uvloop event
loop: no client socket and no load generator, so what is measured is the
gateway's own work per request (the upstream call, the audit commit and its
writer thread included).  Prints JSON: CPU per request (user and system,
all threads, from ``os.times``) and wall time per request.

Under ``valgrind --tool=callgrind --separate-threads=yes`` with
``--callgrind`` (instruction counts, unaffected by other work on the
machine), the counts are zeroed after the warm-up and dumped after the
measured requests, so the dump holds only those (per thread: the event loop's
and the audit writer's); divide by ``--requests``.

``--vary`` appends a request number to each prompt so that no two prompts
are the same (what a cache of guard scores keyed by exact text would see
from distinct users); without it every request sends the same prompt.

Run: ``python bench/inprocess.py [--system clearance] [--requests 2000] [--warmup 200] [--stream] [--vary]
[--prompt TEXT] [--tools N] [--profile FILE.prof] [--callgrind]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen  # noqa: E402
import systems  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def _thread_cpu() -> dict[int, float]:
    """CPU seconds (user + system) of each thread of this process."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / TICKS
    return out


def _callgrind(command: str) -> None:
    """Send a command to the callgrind instance this process runs under (zero or dump the counts)."""
    subprocess.run(["callgrind_control", command, str(os.getpid())], check=True, stdout=subprocess.DEVNULL)


def _body(prompt: str, stream: bool, tools: int = 0) -> bytes:
    body: dict[str, object] = {"model": systems.MODEL, "messages": [{"role": "user", "content": prompt}],
                               "max_tokens": 16}
    if stream:
        body["stream"] = True
    if tools:
        body["tools"] = loadgen.tool_definitions(tools)
    return json.dumps(body).encode()


async def _call(app, key: str, body: bytes, stream: bool) -> int:
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
               (b"accept", b"text/event-stream" if stream else b"application/json"),
               (b"authorization", b"Bearer " + key.encode()), (b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": systems.CHAT_PATH, "raw_path": systems.CHAT_PATH.encode(),
             "query_string": b"", "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000),
             "server": ("127.0.0.1", 8000)}
    sent = False
    done = asyncio.Event()
    status = 0

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            done.set()

    await app(scope, receive, send)
    done.set()
    return status


async def drive(app, key: str, args: argparse.Namespace) -> dict[str, object]:
    starlette_app = app.app
    async with starlette_app.router.lifespan_context(starlette_app):
        bodies = [_body(f"{args.prompt} ({i})" if args.vary else args.prompt, args.stream, args.tools)
                  for i in range(args.warmup + args.requests)]
        for i in range(args.warmup):
            status = await _call(app, key, bodies[i], args.stream)
            if status != 200:
                raise SystemExit(f"warm-up request answered {status}")
        if args.callgrind:
            _callgrind("--zero")
        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile(time.thread_time)  # CPU time of the event loop's thread
            profiler.enable()
        threads0, t0, wall0 = _thread_cpu(), os.times(), time.perf_counter()
        errors = 0
        for i in range(args.warmup, args.warmup + args.requests):
            if await _call(app, key, bodies[i], args.stream) != 200:
                errors += 1
        t1, wall1, threads1 = os.times(), time.perf_counter(), _thread_cpu()
        if args.callgrind:
            _callgrind("--dump=measured")
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
    n = max(1, args.requests)
    per = lambda s: round(s * 1e6 / n, 1)  # noqa: E731
    user, system = t1.user - t0.user, t1.system - t0.system
    return {"requests": args.requests, "errors": errors, "cpu_us_per_request": per(user + system),
            "user_us": per(user), "sys_us": per(system), "wall_us_per_request": per(wall1 - wall0),
            "thread_us": _by_thread(app, threads0, threads1, per)}


def _by_thread(app, before: dict[int, float], after: dict[int, float], per) -> dict[str, float]:
    """CPU per request of the event loop's thread, the audit writer and all other threads."""
    audit = getattr(app.state.gateway, "audit", None)
    writer = audit._thread.native_id if audit is not None and audit._thread is not None else None
    out = {"loop": 0.0, "audit_writer": 0.0, "other": 0.0}
    for tid, cpu in after.items():
        name = "loop" if tid == threading.get_native_id() else "audit_writer" if tid == writer else "other"
        out[name] += cpu - before.get(tid, 0.0)
    return {k: per(v) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--system", default="clearance", choices=sorted(systems.CLEARANCE_VARIANTS))
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--vary", action="store_true", help="a different prompt for every request")
    ap.add_argument("--tools", type=int, default=0, help="every request offers this many function tools")
    ap.add_argument("--prompt", default=loadgen.DEFAULT_PROMPT)
    ap.add_argument("--callgrind", action="store_true",
                    help="running under valgrind --tool=callgrind: zero the counts before the measured requests "
                         "and dump them after (the dump named 'measured' holds only those requests)")
    ap.add_argument("--profile", help="write cProfile stats of the measured requests to this file")
    args = ap.parse_args(argv)

    import uvloop

    work = Path(tempfile.mkdtemp(prefix="clearance-inproc-"))
    stub = systems.start_stub(work, None)
    try:
        policy, guard, audit = systems.CLEARANCE_VARIANTS[args.system]
        state = work / args.system
        config_path = systems.clearance_config(state, int(stub.notes["port"]), systems.free_port(), policy, guard,
                                               audit, 1, systems.CLEARANCE_SETTINGS.get(args.system))
        key = systems.clearance_identity(config_path, work / "identity.log", systems.CLEARANCE_SETUP.get(args.system))

        from clearance.app import create_app
        from clearance.config import load_config
        from clearance.logging import setup_logging

        config = load_config(config_path)
        setup_logging(config.server.log_format, config.server.log_level)
        app = create_app(config)
        res = uvloop.run(drive(app, key, args))
    finally:
        stub.stop()
    print(json.dumps({"system": args.system, "stream": args.stream, "vary": args.vary,
                      "prompt_chars": len(args.prompt), "pid": os.getpid(), **res}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

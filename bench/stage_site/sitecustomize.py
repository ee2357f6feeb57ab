"""Stage timers for ``bench/stage_timing.py``; inert unless ``CLEARANCE_STAGE_TIMING`` names an output file.

That benchmark puts this folder first on the gateway's ``PYTHONPATH``, so
Python imports this module at start-up, before ``clearance serve`` builds the
app.  It wraps, without changing the gateway's code, the functions that bound
each stage of a non-streaming request, and records how long each call took:

- ``admit``: ``pipeline.admit`` (identity, guard, policy; the body is read before it);
- ``upstream``: ``Router.complete`` (the upstream call, fallbacks included);
- ``audit_wait``: ``pipeline.committed`` (the wait for the decision entry's commit that is left
  after the upstream answered) or, with ``audit.answer_waits_for: completion``, ``pipeline.record``
  (encode the entry, queue it, wait for its commit);
- ``audit_commit``: ``AuditLog._commit``, one batch's transaction (on the event loop for SQLite,
  whose disk flush follows on a thread of its own and is not included; on the writer thread for
  PostgreSQL or with ``audit.sqlite_commit_on: writer_thread``).

``SIGUSR2`` clears what was recorded (after the warm-up); ``SIGUSR1`` writes it
as JSON (nanoseconds per call, per stage) to the file.
"""

from __future__ import annotations

import os

_OUT = os.environ.get("CLEARANCE_STAGE_TIMING")

if _OUT:
    import functools
    import json
    import signal
    import time

    from clearance import pipeline
    from clearance.audit.log import AuditLog
    from clearance.routing.router import Router

    _now = time.perf_counter_ns
    _T: dict[str, list[int]] = {"admit": [], "upstream": [], "audit_wait": [], "audit_commit": []}

    def _timed(name, fn):
        @functools.wraps(fn)
        async def wrapper(*args, **kwargs):
            t = _now()
            try:
                return await fn(*args, **kwargs)
            finally:
                _T[name].append(_now() - t)
        return wrapper

    def _timed_sync(name, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            t = _now()
            try:
                return fn(*args, **kwargs)
            finally:
                _T[name].append(_now() - t)
        return wrapper

    pipeline.admit = _timed("admit", pipeline.admit)
    pipeline.record = _timed("audit_wait", pipeline.record)
    pipeline.committed = _timed("audit_wait", pipeline.committed)
    Router.complete = _timed("upstream", Router.complete)
    AuditLog._commit = _timed_sync("audit_commit", AuditLog._commit)

    def _dump(*_):
        tmp = _OUT + ".part"
        with open(tmp, "w") as f:
            json.dump({k: list(v) for k, v in _T.items()}, f)
        os.replace(tmp, _OUT)  # the benchmark never reads a half-written file

    def _clear(*_):
        for v in _T.values():
            v.clear()

    signal.signal(signal.SIGUSR1, _dump)
    signal.signal(signal.SIGUSR2, _clear)

"""Prometheus metrics: requests, decisions, upstream latency, fallbacks.

With several workers, ``clearance serve`` sets ``PROMETHEUS_MULTIPROC_DIR``
and every worker's ``/metrics`` answers for all of them (prometheus_client's
multiprocess mode); with one worker the metrics live in the process.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("clearance_requests", "HTTP requests answered", ["endpoint", "status"], registry=r)
        self.decisions = Counter("clearance_decisions", "Policy decisions", ["model", "decision"], registry=r)
        self.upstream_latency = Histogram("clearance_upstream_latency_seconds", "Upstream call latency",
                                          ["backend", "outcome"], buckets=_LATENCY_BUCKETS, registry=r)
        self.fallbacks = Counter("clearance_fallbacks", "Backends skipped or failed before one served",
                                 ["model", "backend"], registry=r)
        self.guard_latency = Histogram("clearance_guard_latency_seconds", "Guard scoring latency",
                                       buckets=_LATENCY_BUCKETS, registry=r)
        self.snapshot_swaps = Counter("clearance_snapshot_swaps", "Snapshots swapped in", registry=r)

    def observe_upstream(self, backend: str, outcome: str, seconds: float) -> None:
        self.upstream_latency.labels(backend, outcome).observe(seconds)

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)

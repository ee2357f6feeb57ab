"""Prometheus metrics: requests, decisions, upstream latency, fallbacks.

With several workers, ``clearance serve`` sets ``PROMETHEUS_MULTIPROC_DIR``
and every worker's ``/metrics`` answers for all of them (prometheus_client's
multiprocess mode); with one worker the metrics live in the process.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

class _Children:
    """A labelled metric whose children are looked up once per label values and then kept.

    ``prometheus_client``'s ``labels()`` validates and converts the values and
    takes a lock on every call; the request path calls it several times per
    request with the same few values, so the children are kept in a plain
    dictionary (they live as long as the metric anyway).  Everything else is
    the metric's own.
    """

    __slots__ = ("metric", "_children")

    def __init__(self, metric) -> None:
        self.metric = metric
        self._children: dict[tuple[str, ...], object] = {}

    def labels(self, *values: str):
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.metric.labels(*values)
        return child

    def __getattr__(self, name: str):
        return getattr(self.metric, name)


MAX_ORG_LABELS = 500  # bounds the token counters' label cardinality (orgs x models x 2)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = _Children(Counter("clearance_requests", "HTTP requests answered", ["endpoint", "status"],
                                          registry=r))
        self.decisions = _Children(Counter("clearance_decisions", "Policy decisions", ["model", "decision"],
                                           registry=r))
        self.upstream_latency = _Children(Histogram("clearance_upstream_latency_seconds", "Upstream call latency",
                                                    ["backend", "outcome"], buckets=_LATENCY_BUCKETS, registry=r))
        self.fallbacks = _Children(Counter("clearance_fallbacks", "Backends skipped or failed before one served",
                                           ["model", "backend"], registry=r))
        self.guard_latency = Histogram("clearance_guard_latency_seconds", "Guard scoring latency",
                                       buckets=_LATENCY_BUCKETS, registry=r)
        self.snapshot_swaps = Counter("clearance_snapshot_swaps", "Snapshots swapped in", registry=r)
        self.tokens = _Children(Counter("clearance_tokens", "Tokens served, by org and model",
                                        ["org", "model", "kind"], registry=r))
        self._orgs: set[str] = set()

    def count_tokens(self, org: str, model: str, usage) -> None:
        """Tokens by org and model; orgs beyond the first ``MAX_ORG_LABELS`` seen are counted as ``other``."""
        if org not in self._orgs:
            if len(self._orgs) >= MAX_ORG_LABELS:
                org = "other"
            else:
                self._orgs.add(org)
        if usage.prompt_tokens:
            self.tokens.labels(org, model, "prompt").inc(usage.prompt_tokens)
        if usage.completion_tokens:
            self.tokens.labels(org, model, "completion").inc(usage.completion_tokens)

    def observe_upstream(self, backend: str, outcome: str, seconds: float) -> None:
        self.upstream_latency.labels(backend, outcome).observe(seconds)

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)

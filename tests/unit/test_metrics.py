"""Metrics: labelled children are kept per label values and still counted and rendered."""

from __future__ import annotations

from clearance.metrics import Metrics


def test_children_are_kept_and_counted():
    m = Metrics()
    a = m.requests.labels("chat_completions", "200")
    assert m.requests.labels("chat_completions", "200") is a
    b = m.requests.labels("chat_completions", "403")
    assert b is not a
    a.inc()
    a.inc()
    b.inc()
    m.decisions.labels("gpt", "allow").inc()
    m.observe_upstream("stub", "ok", 0.003)
    m.fallbacks.labels("gpt", "backup").inc()
    text = m.render().decode()
    assert 'clearance_requests_total{endpoint="chat_completions",status="200"} 2.0' in text
    assert 'clearance_requests_total{endpoint="chat_completions",status="403"} 1.0' in text
    assert 'clearance_decisions_total{decision="allow",model="gpt"} 1.0' in text
    assert 'clearance_upstream_latency_seconds_count{backend="stub",outcome="ok"} 1.0' in text
    assert 'clearance_fallbacks_total{backend="backup",model="gpt"} 1.0' in text
    # The metric's own interface is still there.
    assert m.requests.labels("x", "y") is m.requests.metric.labels("x", "y")
    assert m.requests._labelnames == ("endpoint", "status")

"""Refused entries are bounded per source and minute; the rest become one counted summary per source."""

from clearance.audit.refused import OVERFLOW_SOURCE, RefusalRecorder
from clearance.types import AuditEntry


class FakeLog:
    def __init__(self):
        self.entries: list[AuditEntry] = []

    def append_later(self, entry, completion=None):
        self.entries.append(entry)


def _refused(source: str) -> AuditEntry:
    return AuditEntry(time="t", request_id="r", kind="refused", principal="", org="", model="",
                      decision="refused", status=401, source=source)


def test_each_source_gets_its_own_budget_and_a_summary_for_the_rest():
    now = [600.0]
    log = FakeLog()
    rec = RefusalRecorder(log, per_minute=3, clock=lambda: now[0])
    queued = [rec.record(_refused("10.0.0.1")) for _ in range(10)] + [rec.record(_refused("10.0.0.2"))]
    assert queued == [True] * 3 + [False] * 7 + [True]
    assert len(log.entries) == 4
    now[0] = 661.0  # the next minute: the summary of the last one goes out first
    assert rec.record(_refused("10.0.0.1"))
    summaries = [e for e in log.entries if e.decision == "refused_summary"]
    assert [(s.source, s.count, s.kind) for s in summaries] == [("10.0.0.1", 7, "refused")]
    assert log.entries[-1].decision == "refused"


def test_flush_writes_pending_summaries():
    log = FakeLog()
    rec = RefusalRecorder(log, per_minute=0, clock=lambda: 60.0)
    for _ in range(5):
        rec.record(_refused("10.0.0.9"))
    assert log.entries == []
    rec.flush()
    assert [(e.source, e.count) for e in log.entries] == [("10.0.0.9", 5)]


def test_sources_beyond_the_tracked_number_share_one_summary():
    log = FakeLog()
    rec = RefusalRecorder(log, per_minute=100, max_sources=2, clock=lambda: 60.0)
    for i in range(6):
        rec.record(_refused(f"10.0.1.{i}"))
    assert len(log.entries) == 2
    rec.flush()
    assert [(e.source, e.count) for e in log.entries[2:]] == [(OVERFLOW_SOURCE, 4)]

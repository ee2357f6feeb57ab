"""The incremental SSE parser: events split anywhere across reads come out whole."""

import pytest

from clearance.routing.backends.transport import SSEParser

STREAM = (b'data: {"a":1}\n\n'
          b"event: ping\ndata: {}\n\n"
          b": a comment\ndata: line one\ndata: line two\n\n"
          b"data: [DONE]\n\n")
EXPECTED = [("", '{"a":1}'), ("ping", "{}"), ("", "line one\nline two"), ("", "[DONE]")]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 16, len(STREAM)])
def test_any_split_gives_the_same_events(size):
    p = SSEParser()
    got = []
    for i in range(0, len(STREAM), size):
        got += p.feed(STREAM[i:i + size])
    got += p.close()
    assert got == EXPECTED


def test_crlf_and_unterminated_last_event():
    p = SSEParser()
    got = p.feed(b'data: x\r\n\r\ndata: y')
    assert got == [("", "x")]
    assert p.close() == [("", "y")]

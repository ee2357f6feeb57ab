"""The one logging setup: an unexpected error's traceback is kept in either format."""

import io
import logging

from clearance.logging import JsonFormatter, TextFormatter


def _log_error(formatter: logging.Formatter) -> str:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    log = logging.getLogger("clearance.test-logging")
    log.handlers[:] = [handler]
    log.propagate = False
    try:
        raise ValueError("boom-1234")
    except ValueError:
        log.exception("unexpected error", extra={"request_id": "req_x"})
    return out.getvalue()


def test_text_format_logs_the_traceback():
    text = _log_error(TextFormatter())
    assert "unexpected error" in text and "request_id=req_x" in text
    assert "Traceback (most recent call last)" in text and "ValueError: boom-1234" in text


def test_json_format_logs_the_traceback():
    assert "ValueError: boom-1234" in _log_error(JsonFormatter())

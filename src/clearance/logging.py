"""One logging setup for the whole gateway: structured lines, JSON in production.

Log records carry their ``extra`` fields as JSON keys.  Nothing that could be
a secret is ever passed to a logger: API keys are logged by their public id.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime, timezone

import orjson

_STD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
               "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        for k, v in record.__dict__.items():
            if k not in _STD and not k.startswith("_"):
                out[k] = v
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in record.__dict__.items() if k not in _STD and not k.startswith("_"))
        line = f"{record.levelname:<7} {record.name}: {record.getMessage()}" + (f" {extras}" if extras else "")
        if record.exc_info:  # an unexpected error's traceback, as the JSON format keeps it
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(fmt: str = "json", level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger("clearance")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False

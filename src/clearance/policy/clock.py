"""Instants and durations as the policy area reads, stores and hands them to Cedar.

Every instant is a timezone-aware UTC ``datetime``.  Cedar's ``datetime`` has
millisecond precision, so instants handed to Cedar are truncated to the
millisecond, and the same integer (epoch milliseconds) keys decision caching.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)

_CEDAR_DT = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{3}))?(Z|[+-]\d{4}))?$"
)
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def utc(dt: datetime) -> datetime:
    """``dt`` as an aware UTC datetime; a naive value is taken to be UTC already."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def epoch_ms(dt: datetime) -> int:
    """Milliseconds since the Unix epoch, truncated (Cedar's precision)."""
    return (utc(dt) - _EPOCH) // _MS


def cedar_datetime(dt: datetime) -> str:
    """The Cedar ``datetime("...")`` argument for ``dt``: ``YYYY-MM-DDThh:mm:ss.SSSZ``."""
    return cedar_datetime_ms(epoch_ms(dt))


def cedar_datetime_ms(ms: int) -> str:
    dt = _EPOCH + timedelta(milliseconds=ms)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def parse_cedar_datetime(text: str) -> int | None:
    """Epoch milliseconds of a Cedar datetime literal, or ``None`` if it is not one."""
    m = _CEDAR_DT.match(text)
    if not m:
        return None
    y, mo, d, hh, mi, ss, frac, off = m.groups()
    try:
        dt = datetime(int(y), int(mo), int(d), int(hh or 0), int(mi or 0), int(ss or 0), tzinfo=timezone.utc)
    except ValueError:
        return None
    ms = (dt - _EPOCH) // _MS + int(frac or 0)
    if off and off != "Z":
        sign = 1 if off[0] == "+" else -1
        ms -= sign * (int(off[1:3]) * 60 + int(off[3:5])) * 60_000
    return ms


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant from a user; a value without an offset is taken as UTC.

    Raises ``ValueError`` with a message fit to show the user.
    """
    raw = text.strip()
    if raw.endswith("Z") or raw.endswith("z"):
        raw = raw[:-1] + "+00:00"
    try:
        return utc(datetime.fromisoformat(raw))
    except ValueError:
        raise ValueError(f"not an ISO 8601 instant: {text!r} (e.g. 2025-03-01T00:00:00Z)") from None


def parse_duration(text: str) -> timedelta:
    """A duration such as ``30m``, ``24h``, ``7d`` or ``2w``.  Raises ``ValueError``."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30m, 24h, 7d, 2w)")
    return timedelta(**{_DURATION_UNITS[m.group(2)]: int(m.group(1))})

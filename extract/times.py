"""The one reading of a time, for the APIs' timestamps and the command line's dates alike."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any


def parse_time(value: Any) -> datetime:
    """An aware UTC datetime from an ISO-8601 date-time (`Z` or an offset) or a bare date
    (midnight UTC); naive ones are UTC, since both APIs send them so. Raises ValueError."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        parsed = datetime.fromisoformat(text)
    else:
        raise ValueError(f"not a timestamp: {value!r}")
    try:
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value!r} falls outside the calendar in UTC") from None


def time_or_none(value: Any) -> datetime | None:
    """The time, or None where the value is not one (paging reads times it does not validate)."""
    try:
        return parse_time(value)
    except (ValueError, TypeError, OverflowError):
        return None

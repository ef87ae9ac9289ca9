"""Durations as every option and variable takes them; a module of its own so that the command's
first steps read one without importing the settings."""

from __future__ import annotations

import math
from datetime import timedelta


def parse_duration(value: str) -> timedelta:
    """`30s`, `5m`, `6h`, `1d`, `1w`: the durations every option and variable takes."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    number, unit = value.strip()[:-1], value.strip()[-1:].lower()
    try:
        seconds = float(number) * units[unit]
    except (KeyError, ValueError, OverflowError):
        seconds = math.nan
    if not math.isfinite(seconds):
        raise ValueError(f"{value!r} is not a duration such as 30s, 5m, 6h, 1d or 1w")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return timedelta(seconds=seconds)

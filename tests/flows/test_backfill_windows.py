"""flows/pipeline.py backfill_windows: [since, until) cut into windows of one size, oldest first,
with no gap and no overlap; each is recorded as finished on its own, so a killed backfill resumes."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.pipeline import backfill_windows

UTC = UTC
T0 = datetime(2026, 1, 1, tzinfo=UTC)

moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))  # noqa: DTZ001 - hypothesis takes naive bounds


@st.composite
def ranges(draw) -> tuple[datetime, datetime, timedelta, int]:
    """A range, a window size, and how many windows it makes: n - 1 full ones and a last one
    of anything from a millisecond to a full window."""
    size_ms = draw(st.integers(1, 40 * 86_400_000))
    n = draw(st.integers(1, 300))
    last_ms = draw(st.integers(1, size_ms))
    since = draw(moments)
    return since, since + timedelta(milliseconds=size_ms * (n - 1) + last_ms), timedelta(milliseconds=size_ms), n


@given(ranges())
def test_the_windows_cover_the_range_with_no_gap_or_overlap(case):
    since, until, size, n = case
    windows = backfill_windows(since, until, size)
    assert len(windows) == n
    assert windows[0][0] == since and windows[-1][1] == until
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))
    assert all(start < end <= start + size for start, end in windows)
    # all full but the last, which ends the range
    assert all(end - start == size for start, end in windows[:-1])


def test_a_range_of_whole_days():
    windows = backfill_windows(T0, T0 + timedelta(days=3), timedelta(days=1))
    assert windows == [(T0, T0 + timedelta(days=1)), (T0 + timedelta(days=1), T0 + timedelta(days=2)),
                       (T0 + timedelta(days=2), T0 + timedelta(days=3))]


def test_a_range_shorter_than_a_window_is_one_window():
    until = T0 + timedelta(hours=5)
    assert backfill_windows(T0, until, timedelta(days=1)) == [(T0, until)]


def test_the_last_window_stops_at_the_end_of_the_range():
    windows = backfill_windows(T0, T0 + timedelta(days=2, hours=6), timedelta(days=1))
    assert len(windows) == 3 and windows[-1] == (T0 + timedelta(days=2), T0 + timedelta(days=2, hours=6))


@pytest.mark.parametrize("until", [T0, T0 - timedelta(seconds=1), T0 - timedelta(days=30)])
def test_an_empty_or_backwards_range_has_no_windows(until):
    assert backfill_windows(T0, until, timedelta(days=1)) == []

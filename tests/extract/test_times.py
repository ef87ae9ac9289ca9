"""extract/times.py, the one reading of a time: every result is an aware UTC datetime, whatever
the text said; what is not a time is a ValueError to parse_time and None to time_or_none."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from extract.times import parse_time, time_or_none

UTC = UTC


@pytest.mark.parametrize("text, want", [
    ("2026-01-01T12:00:00Z", datetime(2026, 1, 1, 12, tzinfo=UTC)),
    ("2026-01-01T12:00:00z", datetime(2026, 1, 1, 12, tzinfo=UTC)),
    ("2026-01-01T12:00:00.123Z", datetime(2026, 1, 1, 12, 0, 0, 123000, tzinfo=UTC)),
    ("2026-01-01T12:00:00.123456Z", datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)),
    ("2026-01-01T12:00:00+00:00", datetime(2026, 1, 1, 12, tzinfo=UTC)),
    ("  2026-01-01T12:00:00Z \n", datetime(2026, 1, 1, 12, tzinfo=UTC)),
])
def test_z_and_utc_offsets_are_utc(text, want):
    got = parse_time(text)
    assert got == want and got.tzinfo is UTC


@pytest.mark.parametrize("text, want", [
    # east of Greenwich: earlier in UTC, across midnight and the year
    ("2026-01-01T00:00:00+14:00", datetime(2025, 12, 31, 10, tzinfo=UTC)),
    ("2026-01-01T12:00:00.5+02:00", datetime(2026, 1, 1, 10, 0, 0, 500000, tzinfo=UTC)),
    # west: later in UTC, and a half-hour offset
    ("2026-01-01T21:00:00-05:30", datetime(2026, 1, 2, 2, 30, tzinfo=UTC)),
    ("2026-03-01T00:00:00-00:01", datetime(2026, 3, 1, 0, 1, tzinfo=UTC)),
])
def test_offsets_are_converted_to_utc_not_relabelled(text, want):
    got = parse_time(text)
    # the same instant, and labelled UTC: a relabelled offset would be hours off
    assert got == want and got.tzinfo is UTC and got.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text, want", [
    ("2026-01-01T12:00:00", datetime(2026, 1, 1, 12, tzinfo=UTC)),
    ("2026-01-01T12:00:00.250", datetime(2026, 1, 1, 12, 0, 0, 250000, tzinfo=UTC)),
    ("2026-01-01 12:00", datetime(2026, 1, 1, 12, tzinfo=UTC)),
])
def test_a_naive_time_is_taken_as_utc(text, want):
    got = parse_time(text)
    assert got == want and got.tzinfo is UTC


@pytest.mark.parametrize("text", ["2026-01-01", "2024-02-29", "1970-01-01"])
def test_a_bare_date_is_midnight_utc(text):
    got = parse_time(text)
    assert got.tzinfo is UTC
    assert (got.date().isoformat(), got.time().isoformat()) == (text, "00:00:00")


def test_datetime_and_date_objects_are_read_the_same_way_as_their_text():
    aware = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=3)))
    assert parse_time(aware) == parse_time(aware.isoformat()) == datetime(2026, 1, 1, 9, tzinfo=UTC)
    assert parse_time(aware).tzinfo is UTC
    assert parse_time(datetime(2026, 1, 1, 12)) == datetime(2026, 1, 1, 12, tzinfo=UTC)  # noqa: DTZ001 - a naive input, on purpose
    assert parse_time(date(2026, 1, 1)) == parse_time("2026-01-01") == datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("text", [
    "", "   ", "yesterday", "Z", "2026-13-01", "2026-02-30", "2026-01-01T24:00:00Z", "2026-01-01T12:00:00+25:00",
    "2026/01/01", "01-01-2026", "2026-01-01T12:00:00ZZ", "NaN",
])
def test_garbage_text_is_a_value_error_and_none(text):
    with pytest.raises(ValueError):
        parse_time(text)
    assert time_or_none(text) is None


@pytest.mark.parametrize("value", [None, 1767225600, 1767225600000, 1.5, True, b"2026-01-01", [], {"at": "2026-01-01"}])
def test_what_is_not_a_string_or_a_date_is_refused(value):
    with pytest.raises(ValueError, match="not a timestamp"):
        parse_time(value)
    assert time_or_none(value) is None


def test_time_or_none_gives_the_same_time_as_parse_time():
    for text in ("2026-01-01T12:00:00.123-03:00", "2026-01-01", "2026-01-01T12:00:00"):
        assert time_or_none(text) == parse_time(text)
        assert time_or_none(text).tzinfo is UTC


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_time_whose_utc_falls_outside_the_calendar_is_none(text):
    # Valid text, but moving it to UTC leaves year 1 to 9999: paging must not stop on it.
    assert time_or_none(text) is None


def test_a_time_that_leaves_the_calendar_in_utc_is_a_value_error():
    with pytest.raises(ValueError, match="outside the calendar"):
        parse_time("9999-12-31T23:59:59-01:00")
    assert time_or_none("9999-12-31T23:59:59-01:00") is None

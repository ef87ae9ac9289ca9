"""flows/durations.py parse_duration: the one way every option and variable reads a duration."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from flows.settings import Settings, parse_duration


@pytest.mark.parametrize("text, want", [
    ("30s", timedelta(seconds=30)),
    ("5m", timedelta(minutes=5)),
    ("6h", timedelta(hours=6)),
    ("1d", timedelta(days=1)),
    ("1w", timedelta(weeks=1)),
    ("90s", timedelta(minutes=1, seconds=30)),
    ("1.5h", timedelta(minutes=90)),
    ("0.5s", timedelta(milliseconds=500)),
    ("0s", timedelta(0)),
    ("2H", timedelta(hours=2)),
    ("  3D\n", timedelta(days=3)),
])
def test_a_number_and_a_unit(text, want):
    assert parse_duration(text) == want


@pytest.mark.parametrize("text", ["", " ", "10", "m", "5x", "5ms", "five minutes", "5 minutes", "1h30m", "-", "s5"])
def test_anything_else_names_the_forms_it_takes(text):
    with pytest.raises(ValueError) as raised:
        parse_duration(text)
    assert repr(text) in str(raised.value) and "30s, 5m, 6h, 1d or 1w" in str(raised.value)


@pytest.mark.parametrize("text", ["-5m", "-0.5s", "-1w"])
def test_a_negative_duration_is_refused(text):
    with pytest.raises(ValueError, match="cannot be negative"):
        parse_duration(text)


def test_the_settings_read_their_durations_with_it(monkeypatch):
    assert Settings(wait="90s").wait == timedelta(seconds=90)
    monkeypatch.setenv("CHATSYNC_WAIT", "2m")
    assert Settings().wait == timedelta(minutes=2)
    monkeypatch.setenv("CHATSYNC_WAIT", "soon")
    with pytest.raises(ValidationError, match="30s, 5m, 6h, 1d or 1w"):
        Settings()


@pytest.mark.parametrize("text", ["infs", "1e400s", "nans"])
def test_durations_that_are_not_finite_are_refused_plainly(text):
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)

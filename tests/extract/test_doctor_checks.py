"""The checks `chatsync doctor` makes of what an API sends, one value at a time: its rate-limit
headers against the rate chatsync keeps to, and what a timestamp lacks."""

from __future__ import annotations

import pytest
from httpx import Headers

from extract.doctor import Verdict, rate_limit, time_flaw


@pytest.mark.parametrize("headers, verdict", [
    ({}, Verdict.UNKNOWN),
    ({"x-ratelimit-limit": "1000", "x-ratelimit-remaining": "998"}, Verdict.OK),
    ({"ratelimit-limit": "300"}, Verdict.VIOLATED),
    ({"x-ratelimit-limit": "many"}, Verdict.UNKNOWN),
])
def test_rate_limit_headers_against_what_chatsync_sends(headers, verdict):
    assert rate_limit(Headers(headers), "chatsync sends up to 450 a minute", 450).verdict is verdict


@pytest.mark.parametrize("value, flaw", [
    ("2025-01-02T03:04:05.678Z", None),
    ("2025-01-02T03:04:05.678901+02:00", None),
    ("2025-01-02T03:04:05Z", "without milliseconds"),
    ("2025-01-02T03:04:05.678", "without a zone"),
    ("2025-01-02", "a bare date"),
    ("2025-01-02 03:04:05.678Z", "not an ISO-8601 date-time"),
    (1735786445678, "not a string"),
])
def test_what_a_time_lacks(value, flaw):
    assert time_flaw(value) == flaw

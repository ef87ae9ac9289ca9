"""The retry policy and the error classification of extract/http.py, on responses built in
memory: what is retried, what fails at once and as which error, and how long a retry waits."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from extract.http import (
    RetryPolicy,
    SourceAuthError,
    SourceError,
    SourceRequestError,
    SourceUnavailable,
    _classify,
    _retry_after,
    _Retryable,
    decode,
)


def response(status: int, content: bytes = b"{}", headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=content, headers=headers, request=httpx.Request("GET", "http://x/y"))


def classify(status: int, content: bytes = b"{}", headers: dict[str, str] | None = None):
    return _classify("cozmox", "/y", response(status, content, headers), decode)


# -- RetryPolicy.delay -------------------------------------------------------------------------

@pytest.mark.parametrize("attempt", [0, 1, 5, 50])
def test_retry_after_is_waited_as_sent_whatever_the_attempt(attempt):
    assert RetryPolicy().delay(attempt, 7.0) == 7.0
    assert RetryPolicy().delay(attempt, 0.25) == 0.25


def test_retry_after_is_capped_and_never_negative():
    policy = RetryPolicy(max_retry_after=120.0)
    assert policy.delay(0, 121.0) == 120.0
    assert policy.delay(0, 86_400.0) == 120.0
    assert policy.delay(0, float("inf")) == 120.0
    assert policy.delay(0, -5.0) == 0.0  # an HTTP date already past
    assert RetryPolicy(max_retry_after=3.0).delay(0, 10.0) == 3.0


@pytest.mark.parametrize("attempt, ceiling", [(0, 0.5), (1, 1.0), (2, 2.0), (5, 16.0), (6, 30.0), (7, 30.0), (40, 30.0)])
def test_backoff_doubles_per_attempt_up_to_its_cap(monkeypatch, attempt, ceiling):
    policy = RetryPolicy(backoff=0.5, max_backoff=30.0)
    # full jitter: the wait is drawn from [0, ceiling]; both ends show the range asked for
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    assert policy.delay(attempt, None) == ceiling
    monkeypatch.setattr(random, "uniform", lambda low, high: low)
    assert policy.delay(attempt, None) == 0.0


def test_backoff_waits_are_jittered_within_the_ceiling():
    policy = RetryPolicy(backoff=0.5, max_backoff=4.0)
    for attempt, ceiling in ((0, 0.5), (3, 4.0), (9, 4.0)):
        waits = [policy.delay(attempt, None) for _ in range(200)]
        assert all(0.0 <= w <= ceiling for w in waits)
        assert len(set(waits)) > 100  # spread out, so that clients retrying together drift apart


def test_no_backoff_means_no_wait():
    assert {RetryPolicy(backoff=0.0).delay(attempt, None) for attempt in range(8)} == {0.0}


# -- Retry-After -------------------------------------------------------------------------------

@pytest.mark.parametrize("value, seconds", [("0", 0.0), ("7", 7.0), (" 7 ", 7.0), ("1.5", 1.5), ("120", 120.0)])
def test_retry_after_in_seconds(value, seconds):
    assert _retry_after(value) == seconds


def test_retry_after_as_an_http_date_is_the_seconds_until_it():
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 27.0 <= _retry_after(soon) <= 30.0  # the header has whole seconds
    past = _retry_after("Wed, 21 Oct 2015 07:28:00 GMT")
    assert past < 0 and RetryPolicy().delay(0, past) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "in a minute", "Wed, 99 Foo 2015"])
def test_no_or_an_unreadable_retry_after_is_none(value):
    assert _retry_after(value) is None


# -- _classify ---------------------------------------------------------------------------------

def test_a_good_response_is_its_decoded_body():
    assert classify(200, b'{"results": [{"id": "a"}], "metadata": {"totalItems": 1}}') == {
        "results": [{"id": "a"}], "metadata": {"totalItems": 1}}
    assert classify(200, b"[1, 2]") == [1, 2]


@pytest.mark.parametrize("status", [401, 403])
def test_a_rejected_key_is_an_auth_error_and_not_retried(status):
    with pytest.raises(SourceAuthError) as raised:
        classify(status, b'{"error": "bad key"}')
    error = raised.value
    assert error.status == status and error.source == "cozmox"
    assert str(error).startswith("cozmox: ") and f"HTTP {status}" in str(error) and "/y" in str(error)
    assert not isinstance(error, SourceUnavailable)


@pytest.mark.parametrize("status", [400, 404, 405, 409, 422])
def test_other_client_errors_are_request_errors_naming_the_path_and_the_apis_words(status):
    with pytest.raises(SourceRequestError) as raised:
        classify(status, b"limit must be\nat most 1000")
    error = raised.value
    assert error.status == status and isinstance(error, SourceError)
    assert not isinstance(error, (SourceAuthError, SourceUnavailable))
    assert f"HTTP {status}" in error.cause and "/y" in error.cause
    assert "limit must be at most 1000" in error.cause  # on one line


def test_a_request_errors_detail_is_cut_short():
    with pytest.raises(SourceRequestError) as raised:
        classify(400, b"x" * 5000)
    assert raised.value.cause.count("x") == 200


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 599])
def test_rate_limits_and_server_errors_are_retried(status):
    with pytest.raises(_Retryable) as raised:
        classify(status)
    assert f"HTTP {status}" in raised.value.cause and raised.value.retry_after is None


def test_a_retryable_response_carries_its_retry_after():
    with pytest.raises(_Retryable) as raised:
        classify(429, headers={"Retry-After": "12"})
    assert raised.value.retry_after == 12.0
    with pytest.raises(_Retryable) as raised:
        classify(503, headers={"Retry-After": "later"})
    assert raised.value.retry_after is None


def test_a_retry_after_on_a_client_error_does_not_make_it_retried():
    with pytest.raises(SourceRequestError):
        classify(400, headers={"Retry-After": "1"})


@pytest.mark.parametrize("body", [b"", b"<html>502 Bad Gateway</html>", b'{"results": [', b"\xff\xfe"])
def test_a_good_status_with_an_unreadable_body_is_retried(body):
    with pytest.raises(_Retryable, match="unreadable JSON body from /y"):
        classify(200, body)


def test_a_body_only_a_lenient_parser_reads_is_not_retried():
    assert classify(200, b'{"cost": NaN, "tokens": 1e400}') == {"cost": None, "tokens": None}


def test_the_decoder_given_is_the_one_used():
    seen = []

    def keep(content: bytes, path: str) -> str:
        seen.append((content, path))
        return "decoded"

    assert _classify("invent", "/z", response(200, b"[]"), keep) == "decoded"
    assert seen == [(b"[]", "/z")]


@pytest.mark.parametrize("header", ["nan", "inf", "-inf"])
def test_a_retry_after_that_is_not_a_finite_number_is_ignored(header):
    assert _retry_after(header) is None


def test_a_very_late_attempt_still_gets_a_capped_delay():
    assert 0 <= RetryPolicy(backoff=0.5, max_backoff=30).delay(5000, None) <= 30

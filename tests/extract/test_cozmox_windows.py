"""How extract/cozmox.py cuts an updated-at range into windows: slices of a full window cover it
with no gap and no overlap, a single millisecond is paged rather than split, and a finished
window is a safe watermark. The API is a handler in memory (httpx.MockTransport): no network."""

from __future__ import annotations

import itertools
import json
import random
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from extract.cozmox import MS, CozmoxChats, Page, chat_key, floor_ms, iso, list_params
from extract.http import ApiClient, CookielessClient, RetryPolicy
from extract.times import parse_time

UTC = UTC
T0 = datetime(2026, 1, 1, tzinfo=UTC)

moments = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2999, 1, 1), timezones=st.just(UTC))  # noqa: DTZ001 - hypothesis takes naive bounds
offsets = st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))


@pytest.fixture(scope="module")
def client():
    """A client that is never asked anything: splitting a window needs no request."""
    with ApiClient("cozmox", "http://cozmox.invalid", "key", retry=RetryPolicy(attempts=1)) as api:
        yield api


def covers(windows: list[tuple[datetime, datetime]], lo: datetime, hi: datetime) -> None:
    """`windows`, in order, are [lo, hi) cut with no gap and no overlap, none of them empty."""
    assert windows[0][0] == lo and windows[-1][1] == hi
    assert all(start < end for start, end in windows)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))


# -- iso, floor_ms, list_params ----------------------------------------------------------------

def test_iso_is_utc_to_the_millisecond_with_a_z():
    assert iso(datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)) == "2026-01-01T12:00:00.123Z"
    assert iso(datetime(2026, 1, 1, 12, 0, 0, 999999, tzinfo=UTC)) == "2026-01-01T12:00:00.999Z"  # cut, not rounded
    assert iso(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00.000Z"
    assert iso(datetime(2026, 1, 1, 1, 30, tzinfo=timezone(timedelta(hours=2)))) == "2025-12-31T23:30:00.000Z"


@given(moments, offsets)
def test_iso_reads_back_as_the_same_millisecond_from_any_offset(moment, offset):
    text = iso(moment.astimezone(offset))
    assert len(text) == 24 and text.endswith("Z")
    assert parse_time(text) == floor_ms(moment)


@given(moments)
def test_floor_ms_drops_only_the_microseconds_below_a_millisecond(moment):
    floored = floor_ms(moment)
    assert floored <= moment < floored + MS
    assert floored.microsecond % 1000 == 0 and floored.tzinfo is moment.tzinfo
    assert floor_ms(floored) == floored


def test_list_params_leave_out_an_open_end():
    start, end = T0, T0 + timedelta(hours=1)
    assert list_params(start, end, limit=20) == {
        "limit": 20, "page": 1, "sortOrder": "ASC",
        "updatedAtGe": "2026-01-01T00:00:00.000Z", "updatedAtLt": "2026-01-01T01:00:00.000Z"}
    assert "updatedAtGe" not in list_params(None, end, limit=1)
    assert "updatedAtLt" not in list_params(start, None, limit=1)
    later = list_params(start, end, limit=5, page=3, order="DESC")
    assert (later["limit"], later["page"], later["sortOrder"]) == (5, 3, "DESC")


# -- splitting a full window -------------------------------------------------------------------

@given(lo=moments, span_ms=st.integers(2, 10**10), total=st.integers(0, 10**6), page_size=st.integers(1, 1000))
def test_the_slices_of_a_full_window_cover_it_with_no_gap_or_overlap(client, lo, span_ms, total, page_size):
    lo = floor_ms(lo)
    hi = lo + MS * span_ms
    slices = CozmoxChats(client, page_size)._split(lo, hi, total)
    covers(slices, lo, hi)
    assert 2 <= len(slices) <= 64
    assert all((end - start) % MS == timedelta(0) for start, end in slices)  # whole milliseconds
    # all but the last are the same width; the last takes the remainder
    widths = {end - start for start, end in slices[:-1]}
    assert len(widths) == 1 and slices[-1][1] - slices[-1][0] >= widths.pop()


def test_more_chats_than_a_page_give_more_slices_up_to_a_limit(client):
    chats = CozmoxChats(client, 100)
    lo, hi = T0, T0 + timedelta(days=1)
    counts = [len(chats._split(lo, hi, total)) for total in (0, 101, 1_000, 5_000, 10**9)]
    assert counts[0] == counts[1] == 2 and counts[1] < counts[2] < counts[3] <= counts[4] <= 64
    assert len(chats._split(lo, lo + MS * 3, 10**9)) == 3  # no slice narrower than a millisecond


def test_a_full_window_is_split_and_its_slices_read_oldest_first(client):
    chats = CozmoxChats(client, 20)
    records = [b'{"id": "x"}'] * 20
    stack: list = []
    lo, hi = T0, T0 + timedelta(hours=1)
    assert list(chats._read((lo, hi), records, 500, stack)) == []  # nothing is taken from a full answer
    order = [stack.pop() for _ in range(len(stack))]
    covers(order, lo, hi)


def test_a_window_that_comes_back_whole_is_one_finished_page(client):
    chats = CozmoxChats(client, 20)
    stack: list = []
    records = [b'{"id": "x"}'] * 19
    end = T0 + timedelta(minutes=5)
    assert list(chats._read((T0, end), records, 19, stack)) == [Page(records, end, True)]
    assert stack == []


# -- windows against an API in memory ----------------------------------------------------------

class FakeCozmox:
    """Chats by updated-at, answered as the API does: `updatedAtGe <= updatedAt < updatedAtLt`,
    sorted, paged by offset, with the total in the metadata."""

    def __init__(self, times: list[datetime]) -> None:
        self.chats = [{"id": f"c{i:05d}", "createdAt": iso(t - timedelta(hours=1)), "updatedAt": iso(t)}
                      for i, t in enumerate(times)]
        self.asked: list[dict[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        q = dict(request.url.params)
        self.asked.append(q)
        assert len(self.asked) < 2000, "the reader keeps asking: a window that never gets smaller"
        found = [c for c in self.chats if q.get("updatedAtGe", "") <= c["updatedAt"]
                 and ("updatedAtLt" not in q or c["updatedAt"] < q["updatedAtLt"])]
        found.sort(key=lambda c: (c["updatedAt"], c["id"]), reverse=q["sortOrder"] == "DESC")
        limit, page = int(q["limit"]), int(q["page"])
        body = {"results": found[(page - 1) * limit: page * limit],
                "metadata": {"itemsPerPage": limit, "totalItems": len(found)}}
        return httpx.Response(200, content=json.dumps(body).encode())

    def updated(self, chat_id: str) -> datetime:
        return parse_time(next(c["updatedAt"] for c in self.chats if c["id"] == chat_id))


def read(api: FakeCozmox, start: datetime | None, end: datetime, page_size: int) -> list[Page]:
    with ApiClient("cozmox", "http://cozmox.invalid", "key", retry=RetryPolicy(attempts=1)) as client:
        client._http.close()
        client._http = CookielessClient(base_url="http://cozmox.invalid", transport=httpx.MockTransport(api))
        return list(CozmoxChats(client, page_size).pages(start, end))


def check_pages(api: FakeCozmox, pages: list[Page], start: datetime | None, end: datetime) -> None:
    """Every chat of the range read exactly once, and each finished window a safe watermark:
    everything updated before its end has been read when it is reported."""
    want = {c["id"] for c in api.chats if (start is None or start <= parse_time(c["updatedAt"])) and
            parse_time(c["updatedAt"]) < end}
    read_so_far: list[str] = []
    finished = []
    for page in pages:
        ids = [chat_key(r).id for r in page.records]
        assert all(api.updated(i) < page.window_end for i in ids)
        read_so_far += ids
        if page.done:
            finished.append(page.window_end)
            due = {i for i in want if api.updated(i) < page.window_end}
            assert due <= set(read_so_far), f"a watermark of {page.window_end} passed chats not yet read"
    assert sorted(read_so_far) == sorted(want), "a chat read twice, missed, or outside the range"
    assert finished == sorted(finished) and finished[-1] == end


def test_a_busy_day_is_read_in_windows_each_chat_once():
    rng = random.Random(7)
    times = [T0 + timedelta(milliseconds=rng.randrange(86_400_000)) for _ in range(400)]
    api = FakeCozmox(times)
    start, end = T0 + timedelta(hours=2), T0 + timedelta(hours=20)
    pages = read(api, start, end, page_size=20)
    check_pages(api, pages, start, end)
    assert len([p for p in pages if p.done]) > 10  # split, not read as one window
    assert all(int(q["limit"]) == 20 and q["page"] == "1" for q in api.asked)  # no offset paging needed


def test_a_single_millisecond_with_more_chats_than_a_page_is_paged_not_split():
    crowded = T0 + timedelta(hours=3, milliseconds=7)
    times = [crowded] * 45 + [T0 + timedelta(hours=h) for h in range(1, 6)]
    api = FakeCozmox(times)
    end = T0 + timedelta(hours=6)
    pages = read(api, T0, end, page_size=20)
    check_pages(api, pages, T0, end)
    windows = {(q["updatedAtGe"], q["updatedAtLt"]) for q in api.asked}
    assert all(parse_time(lt) - parse_time(ge) >= MS for ge, lt in windows)  # never narrower than a millisecond
    paged = [q for q in api.asked if q["updatedAtGe"] == iso(crowded)]
    assert {q["updatedAtLt"] for q in paged} == {iso(crowded + MS)}
    assert {q["page"] for q in paged} >= {"1", "2", "3"}


def test_an_open_start_finds_the_earliest_chat_and_reads_from_there():
    rng = random.Random(3)
    times = [T0 + timedelta(seconds=rng.randrange(3 * 86_400)) for _ in range(150)]
    api = FakeCozmox(times)
    end = T0 + timedelta(days=4)
    pages = read(api, None, end, page_size=25)
    check_pages(api, pages, None, end)


def test_an_empty_range_is_one_finished_page():
    api = FakeCozmox([T0 + timedelta(days=2)])
    pages = read(api, T0, T0 + timedelta(days=1), page_size=20)
    assert pages == [Page([], T0 + timedelta(days=1), True)]

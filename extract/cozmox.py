"""Cozmox chats by updated-at window, so that records changing while we read cannot hide others.

Offset paging over a changing result set skips records: when a chat on page 1 is updated, it
leaves the filtered set and every later chat moves up a place. So chatsync asks for time windows
small enough to come back whole in one response (a response is one consistent snapshot). A
window that comes back full is split in time and asked again, and windows are read oldest first,
so each one finished is a safe watermark. Only a single millisecond holding more chats than a
page falls back to paging, twice over in opposite orders if the pages disagree with the total.

The order `sortOrder` sorts by is not documented, so nothing here relies on it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import msgspec

from extract.http import ApiClient, decode, dumps
from extract.settings import COZMOX_CHATS_PATH, COZMOX_DEFAULT_BASE_URL
from extract.source import BackfillWalk, Fetched, Source, StoredVersions, Window
from extract.times import time_or_none

if TYPE_CHECKING:
    from extract.doctor import Check

log = logging.getLogger("chatsync.extract")

MS = timedelta(milliseconds=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Split a full window into slices expected to fill this share of a page, so that most slices
# come back whole at the first request.
_FILL = 0.6
_MAX_SLICES = 64
# Windows asked for ahead of the one being read. The API allows about 500 requests a minute.
_AHEAD = 4


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def floor_ms(ts: datetime) -> datetime:
    return ts.replace(microsecond=ts.microsecond - ts.microsecond % 1000)


def list_params(start: datetime | None, end: datetime | None, *, limit: int, page: int = 1,
                order: str = "ASC") -> dict[str, Any]:
    """The query of one page of chats with `start <= updatedAt < end` (either may be open)."""
    params: dict[str, Any] = {"limit": limit, "page": page, "sortOrder": order}
    if end is not None:
        params["updatedAtLt"] = iso(end)
    if start is not None:
        params["updatedAtGe"] = iso(start)
    return params


@dataclass
class Page:
    """Chats of one response, each the JSON text it was sent as. `done` marks the last page of a
    window: everything updated before `window_end` (and at or after the range start) has then
    been read."""

    records: list[bytes]
    window_end: datetime
    done: bool


class _Envelope(msgspec.Struct):
    results: list[msgspec.Raw]
    metadata: Any = None


class ChatKey(msgspec.Struct):
    """The fields paging looks at; reading them skips the rest of the chat unparsed."""

    id: Any = None
    orgId: Any = None
    createdAt: Any = None
    updatedAt: Any = None


_ENVELOPE = msgspec.json.Decoder(_Envelope)
_KEY = msgspec.json.Decoder(ChatKey)


def split_envelope(content: bytes, path: str) -> Any:
    """The envelope with each chat left as its JSON text.

    Most of a page is embedded assistants and messages that are stored as sent, so the page is
    cut into chats without building Python objects for them. A body msgspec cannot cut (NaN, a
    bad envelope, nesting past its limit of about 1,000 levels) is read leniently instead; where
    nothing reads it, the page is unreadable and retried like a truncated one.
    """
    try:
        envelope = _ENVELOPE.decode(content)
        return {"results": [bytes(chat) for chat in envelope.results], "metadata": envelope.metadata}
    except (msgspec.DecodeError, RecursionError):
        pass
    body = decode(content, path)
    if isinstance(body, dict) and isinstance(body.get("results"), list):
        body["results"] = [dumps(chat) for chat in body["results"]]
    return body


def chat_key(text: bytes) -> ChatKey:
    """The id and times of a chat's text; all None where it is not an object."""
    try:
        return _KEY.decode(text)
    except (msgspec.DecodeError, RecursionError):
        return ChatKey()


def _all_outside(records: list[bytes], start: datetime | None, end: datetime) -> bool:
    """True for a page that cannot be the answer: every dated chat on it is out of range.

    That is what a repeated page looks like; chats without a readable date prove nothing.
    """
    times = [t for t in (time_or_none(chat_key(r).updatedAt) for r in records) if t is not None]
    return bool(times) and all(t >= end or (start is not None and t < start) for t in times)


class CozmoxChats:
    def __init__(self, client: ApiClient, page_size: int, source: Source | None = None) -> None:
        self.client = client
        self.page_size = page_size
        self.source = source  # told of totals and surprises
        self.shrunk = False

    def _request(self, start: datetime | None, end: datetime, *, limit: int, page: int = 1,
                 order: str = "ASC", before: datetime | None = None) -> tuple[list[bytes], int]:
        params = list_params(start, end, limit=limit, page=page, order=order)

        def check(body: Any) -> str | None:
            if not isinstance(body, dict) or not isinstance(body.get("results"), list):
                return "an envelope with no results list"
            if _all_outside(body["results"], start, end):
                return "a page whose chats all lie outside the window asked for"
            return None

        body, _ = self.client.get(COZMOX_CHATS_PATH, params, check, split_envelope)
        metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        per_page, total = metadata.get("itemsPerPage"), metadata.get("totalItems")
        if limit == self.page_size and isinstance(per_page, int) and 0 < per_page < limit:
            # The API pages smaller than asked: a page of `per_page` is a full one.
            self._warn(f"the API answered pages of {per_page} to a request for {limit}; reading on with pages "
                       f"of {per_page}")
            self.page_size = per_page
        results = body["results"]
        return results, total if isinstance(total, int) and total >= 0 else len(results)

    def pages(self, start: datetime | None, end: datetime) -> Iterator[Page]:
        """Every chat with `start <= updatedAt < end`, oldest window first.

        The next few windows are asked for while one is being read and loaded: each answer is a
        snapshot of its own window, so asking early changes nothing but the wait.
        """
        stack: list[tuple[datetime | None, datetime]] = [(start, end)]
        asked: dict[tuple[datetime | None, datetime], Future[tuple[list[bytes], int]]] = {}
        with ThreadPoolExecutor(_AHEAD, thread_name_prefix="cozmox-fetch") as pool:
            try:
                while stack:
                    for ahead in reversed(stack[-_AHEAD:]):  # the next window first
                        if ahead not in asked:
                            asked[ahead] = pool.submit(self._request, *ahead, limit=self.page_size)
                    window = stack.pop()
                    results, total = asked.pop(window).result()
                    yield from self._read(window, results, total, stack)
            finally:
                for answer in asked.values():
                    answer.cancel()

    def _read(self, window: tuple[datetime | None, datetime], results: list[bytes], total: int,
              stack: list[tuple[datetime | None, datetime]]) -> Iterator[Page]:
        """One window's answer: its page when whole, else its slices pushed onto `stack`."""
        lo, hi = window
        if len(results) < self.page_size and results and total > len(results) and not self.shrunk:
            # Fewer than asked while the API's total says more: it pages smaller than asked,
            # and a page of that size is a full one (the window is split, not ended).
            self._warn(f"a window answered {len(results)} chats of the {total} it holds to a request for "
                       f"{self.page_size}; reading on with pages of {len(results)}")
            self.shrunk, self.page_size = True, len(results)
        if len(results) < self.page_size:
            if self.source is not None:
                self.source.api_total = (self.source.api_total or 0) + total
                self.source.api_seen += len(results)
            yield Page(results, hi, True)
            return
        if lo is None:
            lo = self._earliest(hi)
        if hi - lo <= MS:
            yield from self._page_through(lo, hi)
            return
        stack.extend(reversed(self._split(lo, hi, total)))

    def _warn(self, text: str) -> None:
        if self.source is not None:
            self.source.warn(text)
        else:
            log.warning("%s: %s", self.client.source, text)

    def _split(self, lo: datetime, hi: datetime, total: int) -> list[tuple[datetime, datetime]]:
        span_ms = (hi - lo) // MS
        wanted = math.ceil(max(total, self.page_size + 1) / (self.page_size * _FILL))
        slices = max(2, min(wanted, _MAX_SLICES, span_ms))
        step = span_ms // slices
        bounds = [lo + MS * (step * i) for i in range(slices)] + [hi]
        return list(pairwise(bounds))

    def _earliest(self, end: datetime) -> datetime:
        """A lower bound on updatedAt for a sync with no watermark.

        The first chat in ascending order, by creation or update, was created no later than any
        chat was updated; one count then confirms nothing lies before it.
        """
        first, _ = self._request(None, end, limit=1)
        created = time_or_none(chat_key(first[0]).createdAt) if first else None
        if created is not None:
            bound = floor_ms(created)
            _, before = self._request(None, bound, limit=1)
            if before == 0:
                return bound
        return EPOCH

    def _page_through(self, lo: datetime, hi: datetime) -> Iterator[Page]:
        """More chats in one millisecond than a page: offset paging is all that is left."""
        seen: set[str] = set()
        total = 0
        for order in ("ASC", "DESC"):
            page = 1
            while page <= math.ceil(max(total, 1) / self.page_size) + 1 or page == 1:
                results, total = self._request(lo, hi, limit=self.page_size, page=page, order=order)
                keyed = [(chat_key(r).id, r) for r in results]
                fresh = [r for key, r in keyed if key not in seen]
                seen.update(key for key, _ in keyed if isinstance(key, str))
                if fresh:
                    yield Page(fresh, hi, False)
                if len(results) < self.page_size:
                    break
                page += 1
            if len(seen) >= total:
                break
            log.warning("%s: pages of %s held %d of %d chats; reading again in reverse order", self.client.source,
                        iso(lo), len(seen), total)
        yield Page([], hi, True)


class Cozmox(Source):
    """One Cozmox key: its organisation's chats, read in updated-at windows."""

    name = "cozmox"
    default_base_url = COZMOX_DEFAULT_BASE_URL

    def org_id(self) -> str | None:
        def check(body: Any) -> str | None:
            return None if isinstance(body, dict) and isinstance(body.get("results"), list) \
                else "an envelope with no results list"

        body, _ = self.client.get(COZMOX_CHATS_PATH, {"limit": 1}, check, split_envelope)
        found = chat_key(body["results"][0]).orgId if body["results"] else None
        return found if isinstance(found, str) and found else None

    def changes(self, start: datetime | None, end: datetime, force: bool,
                stored_versions: StoredVersions) -> Iterator[Fetched]:
        # Every chat read is passed on: the load compares versions in the warehouse itself.
        for page in CozmoxChats(self.client, self.options.page_size, self).pages(start, end):
            yield Fetched(page.records, len(page.records), watermark=page.window_end if page.done else None)

    def backfill(self, windows: list[Window], stored_versions: StoredVersions) -> list[BackfillWalk]:
        return [BackfillWalk(f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}", [(start, end)],
                             partial(self.changes, start, end, False, stored_versions))
                for start, end in windows]

    def listed_ids(self, started: datetime) -> set[str]:
        """Windows run oldest first up to a day ahead, so a chat updated during the walk is
        seen at its old place or its new one."""
        ids: set[str] = set()
        for page in CozmoxChats(self.client, self.options.page_size, self).pages(None, started + timedelta(days=1)):
            ids.update(key for key in (chat_key(text).id for text in page.records) if isinstance(key, str))
        return ids

    def doctor(self) -> list[Check]:
        from extract.cozmox_doctor import checks

        return checks(self)

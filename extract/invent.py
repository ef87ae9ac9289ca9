"""Invent chats, walked newest activity first, and their messages, a request per chat.

The chat list has no updated-at filter: it is an inbox, newest activity first (assumed). An
incremental run reads from the top and stops after a whole page older than where it must start.
The order is checked, not trusted: a page out of order makes the walk go on to the end. Pages are
ended by their length, never by the `pagination-count` header alone, which only reports progress
and shows when chats vanished while the walk went on (then the walk steps back a page).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from extract.http import ApiClient, SourceAuthError, SourceError, SourceRequestError, SourceUnavailable, dumps
from extract.settings import (
    INVENT_CHATS_PATH,
    INVENT_COUNT_HEADER,
    INVENT_DEFAULT_BASE_URL,
    INVENT_DEFAULT_ORG,
    INVENT_MAX_TAKE,
    INVENT_MESSAGES_PATH,
)
from extract.source import BackfillWalk, Fetched, Source, StoredVersions, Window
from extract.times import time_or_none

if TYPE_CHECKING:
    from extract.doctor import Check

log = logging.getLogger("chatsync.extract")

# A walk steps back this many times at most when chats vanish under it.
_MAX_STEP_BACKS = 20
# Message requests asked before "most of them failed" means the endpoint, not a few chats.
_MOST_OF = 10


@dataclass(frozen=True)
class LastMessage:
    """A chat's last message as the chat list names it: what its message list must reach."""

    id: str | None
    created_at: datetime | None

    @classmethod
    def of(cls, chat: dict[str, Any]) -> LastMessage | None:
        last = chat.get("last_message")
        if not isinstance(last, dict):
            return None
        message_id = last.get("id") if isinstance(last.get("id"), str) else None
        found = cls(message_id, time_or_none(last.get("created_at")))
        return found if found.id or found.created_at else None

    def found_in(self, messages: list[Any]) -> bool:
        if self.id and any(isinstance(m, dict) and m.get("id") == self.id for m in messages):
            return True
        if self.created_at is None:
            return self.id is None
        times = [t for t in (time_or_none(m.get("created_at")) if isinstance(m, dict) else None for m in messages) if t]
        # A second's slack: the list and the message endpoint may round times differently.
        return bool(times) and max(times) >= self.created_at - timedelta(seconds=1)


@dataclass
class ListPage:
    records: list[Any]
    number: int
    count: int | None


def _count(headers: Any) -> int | None:
    try:
        value = int(headers.get(INVENT_COUNT_HEADER, ""))
    except ValueError:
        return None
    return value if value >= 0 else None


def _day(ts: datetime) -> datetime:
    return ts.replace(hour=0, minute=0, second=0, microsecond=0)


def _ids(records: list[Any]) -> list[Any]:
    return [r.get("id") if isinstance(r, dict) else None for r in records]


class InventChats:
    def __init__(self, client: ApiClient, org_id: str, take: int = INVENT_MAX_TAKE, concurrency: int = 8,
                 source: Source | None = None) -> None:
        self.source = source  # told of totals and surprises
        self.client = client
        self.path = INVENT_CHATS_PATH.format(org_id=org_id)
        self.take = min(take, INVENT_MAX_TAKE)
        self.concurrency = concurrency
        self.out_of_order = False
        self.shrunk = False
        self.coarse = False  # updated_at always midnight: a day is all it says
        self.first_page: tuple[list[Any], int | None] | None = None  # read ahead, for the first walk

    def page(self, number: int, previous: list[Any] | None) -> tuple[list[Any], int | None]:
        def check(body: Any) -> str | None:
            if not isinstance(body, list):
                return "a chat list that is not a JSON array"
            if previous and len(body) == len(previous) and _ids(body) == _ids(previous):
                return "a repeat of the previous page"
            return None

        if number == 1 and self.first_page is not None:
            first, self.first_page = self.first_page, None
            return first
        body, headers = self.client.get(self.path, {"page": number, "take": self.take}, check)
        return body, _count(headers)

    def walk(self, since: datetime | None) -> Iterator[ListPage]:
        """Pages of chats, newest first, until a whole page lies before `since` (or the end)."""
        number, previous, oldest_so_far, last_count, step_backs = 1, None, None, None, 0
        seen: set[str] = set()
        while True:
            records, count = self.page(number, previous)
            times = [t for t in (time_or_none(r.get("updated_at")) if isinstance(r, dict) else None for r in records)
                     if t]
            if not self.out_of_order and (
                any(a < b for a, b in pairwise(times))
                or (oldest_so_far is not None and times and max(times) > oldest_so_far)
            ):
                self.out_of_order = True
                log.warning("%s: page %d of the chat list is out of updated_at order; "
                            "reading the whole list instead of stopping early", self.client.source, number)
            yield ListPage(records, number, count)
            seen.update(i for i in _ids(records) if isinstance(i, str))
            short = len(records) < self.take
            if short and not (records and count is not None and count > len(seen)):
                if since is None and count is not None and self.source is not None:
                    self.source.api_total = (self.source.api_total or 0) + count
                    self.source.api_seen += len(seen)
                return
            if short and count is not None:  # (a short page without a count has returned above)
                # A short page while the API's own count says more: it pages smaller than asked,
                # and page numbers follow its size, so read on, to an empty page.
                self._short_page(len(records), count)
            if times and not self.coarse and all(t == _day(t) for t in times):
                self.coarse = True
                if self.source is not None:
                    self.source.warn("updated_at carries no time of day: the walk reads whole days, and a chat "
                                     "is taken as changed when its listing is")
            stop_before = _day(since) if since is not None and self.coarse else since
            if (stop_before is not None and not self.out_of_order and times and len(times) == len(records)
                    and max(times) < stop_before):
                return
            if count is not None and last_count is not None and count < last_count and step_backs < _MAX_STEP_BACKS:
                # Chats vanished above us and the rest moved up: read the boundary again.
                log.info("%s: the chat list shrank from %d to %d while paging; re-reading page %d", self.client.source,
                         last_count, count, number)
                step_backs += 1
                previous, last_count, number = None, count, max(1, number - 1)
                continue
            if times:
                oldest_so_far = min(times) if oldest_so_far is None else min(oldest_so_far, min(times))
            previous, last_count, number = records, count if count is not None else last_count, number + 1

    def messages(self, chat_id: str, last: LastMessage | None = None) -> list[Any]:
        """Every message of one chat, oldest first, as the API pages them.

        `last` is the chat's last message as the chat list gives it: a message list that has
        neither it nor anything as recent comes from a stale cache or replica, and is asked again.
        """
        for attempt in range(self.client.retry.attempts):
            messages, count = self._message_pages(chat_id)
            complete = count is None or len({m.get("id") if isinstance(m, dict) else None for m in messages}) >= count
            if last is not None and not last.found_in(messages):
                problem = "end before its last message"
            elif not complete and attempt + 1 < self.client.retry.attempts:
                problem = f"number {len(messages)} where the API counts {count}"
            else:
                if not complete and self.source is not None:
                    self.source.warn(f"the messages of chat {chat_id} number {len(messages)} where the API counts "
                                     f"{count}, after {attempt + 1} readings; loading what was read")
                return messages
            if attempt + 1 < self.client.retry.attempts:
                self.client.count_retry()
                log.warning("%s: the messages of chat %s %s; asking again", self.client.source, chat_id, problem)
        raise SourceUnavailable(self.client.source, f"the messages of chat {chat_id} end before its last message")

    def _message_pages(self, chat_id: str) -> tuple[list[Any], int | None]:
        """The pages of one chat's messages, and the API's count of them as its last page said."""
        path = INVENT_MESSAGES_PATH.format(chat_id=chat_id)
        out: list[Any] = []
        number, previous = 1, None
        while True:
            def check(body: Any, previous: list[Any] | None = previous) -> str | None:
                if not isinstance(body, list):
                    return "a message list that is not a JSON array"
                if previous and _ids(body) == _ids(previous):
                    return "a repeat of the previous page"
                return None

            body, headers = self.client.get(path, {"page": number, "take": self.take}, check)
            out.extend(body)
            count = _count(headers)
            if len(body) < self.take:
                if body and count is not None and count > len(out):
                    self._short_page(len(body), count)  # read on, as for the chat list
                    previous, number = body, number + 1
                    continue
                return out, count
            previous, number = body, number + 1

    def _short_page(self, served: int, count: int) -> None:
        if self.source is not None and not self.shrunk:
            self.shrunk = True
            self.source.warn(f"a page answered {served} of {count} records to a request for {self.take}; "
                             f"reading on with pages of {served}")

    def messages_of(self, chat_ids: dict[str, LastMessage | None]) -> Messages:
        """Messages of many chats at once; a chat whose messages fail is reported, not fatal.

        A 404 for a chat the list has just shown is not taken as a deletion: the chat waits for
        the next run, which skips it if the list no longer shows it (reconcile marks it). A 403
        on one chat is that chat's, and it waits too. A 401 is the same for every chat, so it
        stops the run instead.
        """
        result = Messages()

        def fetch_messages_of(chat_id: str) -> tuple[str, list[Any] | SourceError]:
            try:
                return chat_id, self.messages(chat_id, chat_ids[chat_id])
            except SourceAuthError as exc:
                if exc.status == 403:
                    return chat_id, exc
                raise
            except SourceError as exc:
                return chat_id, exc

        if not chat_ids:
            return result
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(chat_ids))) as pool:
            for chat_id, answer in pool.map(fetch_messages_of, list(chat_ids)):
                if isinstance(answer, SourceRequestError) and answer.status == 404:
                    result.gone.add(chat_id)
                elif isinstance(answer, SourceError):
                    result.failed[chat_id] = answer
                else:
                    result.found[chat_id] = answer
        return result


@dataclass
class Messages:
    found: dict[str, list[Any]] = field(default_factory=dict)
    failed: dict[str, SourceError] = field(default_factory=dict)  # to read again next run
    gone: set[str] = field(default_factory=set)  # 404 while the list still showed them


class Invent(Source):
    """One Invent key and organisation: the chat list walked newest first, and the messages of
    the chats that moved. Its watermark is written once, after the walk, and held back before
    any chat whose messages could not be read."""

    name = "invent"
    default_base_url = INVENT_DEFAULT_BASE_URL
    default_org = INVENT_DEFAULT_ORG
    rate_limited = True

    _first_page: tuple[list[Any], int | None] | None = None

    def _chats(self) -> InventChats:
        reader = InventChats(self.client, self.org or INVENT_DEFAULT_ORG, take=self.options.page_size,
                             concurrency=self.options.concurrency, source=self)
        reader.first_page, self._first_page = self._first_page, None
        return reader

    def org_id(self) -> str | None:
        """The org the chats name: the shorthand `c` and the org's id are then one account. The
        list's first page tells, and the walk that follows starts from it."""
        reader = self._chats()
        self._first_page = reader.page(1, None)
        body = self._first_page[0]
        named = body[0].get("org_id") if body and isinstance(body[0], dict) else None
        if isinstance(named, str) and named:
            return named
        if body and self.org == INVENT_DEFAULT_ORG:
            log.warning("%s: the chats of org %s do not name their org; keeping its state under %r", self.client.source,
                        self.org, self.org)
        return self.org if body or self.org != INVENT_DEFAULT_ORG else None

    def changes(self, start: datetime | None, end: datetime, force: bool,
                stored_versions: StoredVersions) -> Iterator[Fetched]:
        """Chats updated at or after `end` are read too where the walk meets them: they are
        current, and only a backfill (bounded on both sides) leaves them out."""
        return self._walk(start, None, force, end, stored_versions)

    def backfill(self, windows: list[Window], stored_versions: StoredVersions) -> list[BackfillWalk]:
        """The list can only be walked newest first: one walk covers every window."""
        if not windows:
            return []
        since, until = min(w[0] for w in windows), max(w[1] for w in windows)
        return [BackfillWalk(f"{since:%Y-%m-%d} to {until:%Y-%m-%d}", windows,
                             lambda: self._walk(since, until, False, until, stored_versions))]

    def listed_ids(self, started: datetime) -> set[str]:
        """The walk is newest first, so it ends by re-reading the top of the list down to where
        it began, where chats updated meanwhile went."""
        ids: set[str] = set()
        for since in (None, started - timedelta(seconds=self.options.safety_margin_seconds)):
            for page in self._chats().walk(since):
                ids.update(r["id"] for r in page.records if isinstance(r, dict) and isinstance(r.get("id"), str))
        return ids

    def doctor(self) -> list[Check]:
        from extract.invent_doctor import checks

        return checks(self)

    _asked = 0
    _failed = 0
    _gone = 0

    def _tally_message_failures(self, asked: int, messages: Messages) -> None:
        """Most message requests failing is the endpoint failing, not a few chats: the run stops
        and names it. A 404 for a listed chat is said once a run, with how many so far."""
        self._asked += asked
        self._failed += len(messages.failed)
        self._gone += len(messages.gone)
        if self._asked >= _MOST_OF and self._failed * 2 > self._asked:
            first = next(iter(messages.failed.values()), None)
            raise SourceUnavailable(self.client.source, f"{self._failed} of {self._asked} requests to "
                                    f"{INVENT_MESSAGES_PATH} failed" + (f" (last: {first.cause})" if first else ""))
        if messages.gone:
            self.warn("the messages of chats the list shows answered 404; they wait for the next run, "
                      "which skips any the list no longer shows")

    def _walk(self, start: datetime | None, until: datetime | None, force: bool, watermark: datetime,
              stored_versions: StoredVersions) -> Iterator[Fetched]:
        """Messages are fetched only for chats whose updated_at moved. A chat that cannot be
        read is passed on as it is, for the transform to reject with its reason."""
        reader = self._chats()
        held_back: list[datetime] = []
        for page in reader.walk(start):
            keyed = [(r, _id(r), time_or_none(r.get("updated_at")) if isinstance(r, dict) else None)
                     for r in page.records]
            if until is not None:
                keyed = [k for k in keyed if k[2] is None or start is None or start <= k[2] < until]
            versions = stored_versions([chat_id for _, chat_id, _ in keyed if chat_id is not None])
            changed = [k for k in keyed if force or k[1] is None or k[2] is None or k[1] not in versions
                       or k[2] > versions[k[1]][0]
                       or (k[2] == versions[k[1]][0] and _digest(k[0]) != versions[k[1]][1])]
            asked = {chat_id: LastMessage.of(record) for record, chat_id, _ in changed if chat_id is not None}
            messages = reader.messages_of(asked)
            self._tally_message_failures(len(asked), messages)
            waiting = messages.failed.keys() | messages.gone
            held_back += [updated for _, chat_id, updated in changed if chat_id in waiting and updated]
            ready = [record for record, chat_id, _ in changed if chat_id is None or chat_id in messages.found]
            if page.count is not None:
                log.info("%s: chat list page %d of %d, %d chats changed", self.client.source, page.number,
                         max(1, -(-page.count // reader.take)), len(changed))
            yield Fetched(ready, len(page.records), children=messages.found,
                          deferred={chat_id: exc.cause for chat_id, exc in messages.failed.items()})
        # A chat left behind must come inside the next run's range again.
        yield Fetched([], 0, watermark=min([watermark, *held_back]))


def _digest(record: Any) -> str:
    """The MD5 of a listed chat's JSON as the warehouse stores it: a chat whose listing changed
    (its last message, its inbox state) changed, whatever its updated_at says."""
    return hashlib.md5(dumps(record)).hexdigest()


def _id(record: Any) -> str | None:
    chat_id = record.get("id") if isinstance(record, dict) else None
    return chat_id if isinstance(chat_id, str) and chat_id else None

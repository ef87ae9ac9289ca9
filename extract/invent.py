"""Invent chats, walked newest activity first, and their messages, a request per chat.

The chat list has no updated-at filter: it is an inbox, newest activity first (assumed). An
incremental run reads from the top and stops after a whole page older than where it must start.
The order is checked, not trusted: a page out of order makes the walk go on to the end. Pages are
ended by their length, never by the `pagination-count` header alone, which only reports progress
and shows when chats vanished while the walk went on (then the walk steps back a page).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from extract.cozmox import parse_time
from extract.http import ApiClient, SourceAuthError, SourceError, SourceRequestError, SourceUnavailable
from extract.settings import (
    INVENT_CHATS_PATH,
    INVENT_COUNT_HEADER,
    INVENT_DEFAULT_BASE_URL,
    INVENT_DEFAULT_ORG,
    INVENT_MAX_TAKE,
    INVENT_MESSAGES_PATH,
)
from extract.source import BackfillWalk, Fetched, HeldVersions, Source, Window

log = logging.getLogger("chatsync.extract")

# A walk steps back this many times at most when chats vanish under it.
_MAX_STEP_BACKS = 20


@dataclass(frozen=True)
class LastMessage:
    """A chat's last message as the chat list names it: what its message list must reach."""

    id: str | None
    created_at: datetime | None

    @classmethod
    def of(cls, chat: dict) -> "LastMessage | None":
        last = chat.get("last_message")
        if not isinstance(last, dict):
            return None
        message_id = last.get("id") if isinstance(last.get("id"), str) else None
        found = cls(message_id, parse_time(last.get("created_at")))
        return found if found.id or found.created_at else None

    def found_in(self, messages: list[Any]) -> bool:
        if self.id and any(isinstance(m, dict) and m.get("id") == self.id for m in messages):
            return True
        if self.created_at is None:
            return self.id is None
        times = [t for t in (parse_time(m.get("created_at")) if isinstance(m, dict) else None for m in messages) if t]
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


def _ids(records: list[Any]) -> list[Any]:
    return [r.get("id") if isinstance(r, dict) else None for r in records]


class InventChats:
    def __init__(self, client: ApiClient, org_id: str, take: int = INVENT_MAX_TAKE, concurrency: int = 8) -> None:
        self.client = client
        self.path = INVENT_CHATS_PATH.format(org_id=org_id)
        self.take = min(take, INVENT_MAX_TAKE)
        self.concurrency = concurrency
        self.out_of_order = False
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
        while True:
            records, count = self.page(number, previous)
            times = [t for t in (parse_time(r.get("updated_at")) if isinstance(r, dict) else None for r in records) if t]
            if not self.out_of_order and (
                any(a < b for a, b in zip(times, times[1:]))
                or (oldest_so_far is not None and times and max(times) > oldest_so_far)
            ):
                self.out_of_order = True
                log.warning("%s: page %d of the chat list is out of updated_at order; "
                            "reading the whole list instead of stopping early", self.client.source, number)
            yield ListPage(records, number, count)
            if len(records) < self.take:
                return
            if (since is not None and not self.out_of_order and times and len(times) == len(records)
                    and max(times) < since):
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
            messages = self._message_pages(chat_id)
            if last is None or last.found_in(messages):
                return messages
            if attempt + 1 < self.client.retry.attempts:
                self.client.count_retry()
                log.warning("%s: the messages of chat %s end before its last message; asking again", self.client.source, chat_id)
        raise SourceUnavailable(self.client.source, f"the messages of chat {chat_id} end before its last message")

    def _message_pages(self, chat_id: str) -> list[Any]:
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

            body, _ = self.client.get(path, {"page": number, "take": self.take}, check)
            out.extend(body)
            if len(body) < self.take:
                return out
            previous, number = body, number + 1

    def messages_of(self, chat_ids: dict[str, "LastMessage | None"]) -> tuple[dict[str, list[Any]], dict[str, SourceError]]:
        """Messages of many chats at once; a chat whose messages fail is reported, not fatal.

        A chat deleted since the list was read (404) is skipped: reconcile marks it. A rejected
        key is the same for every chat, so it stops the run instead.
        """
        found: dict[str, list[Any]] = {}
        failed: dict[str, SourceError] = {}

        def one(chat_id: str) -> tuple[str, list[Any] | SourceError | None]:
            try:
                return chat_id, self.messages(chat_id, chat_ids[chat_id])
            except SourceAuthError:
                raise
            except SourceRequestError as exc:
                if exc.status == 404:
                    # Deleted between the list and now: nothing to load, nothing to wait for.
                    log.info("%s: chat %s is gone (404 on its messages)", self.client.source, chat_id)
                    return chat_id, None
                return chat_id, exc
            except SourceError as exc:
                return chat_id, exc

        if not chat_ids:
            return found, failed
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(chat_ids))) as pool:
            for chat_id, result in pool.map(one, list(chat_ids)):
                if isinstance(result, SourceError):
                    failed[chat_id] = result
                elif result is not None:
                    found[chat_id] = result
        return found, failed


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
                             concurrency=self.options.concurrency)
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
                held: HeldVersions) -> Iterator[Fetched]:
        """Chats updated at or after `end` are read too where the walk meets them: they are
        current, and only a backfill (bounded on both sides) leaves them out."""
        return self._walk(start, None, force, end, held)

    def backfill(self, windows: list[Window], held: HeldVersions) -> list[BackfillWalk]:
        """The list can only be walked newest first: one walk covers every window."""
        if not windows:
            return []
        since, until = min(w[0] for w in windows), max(w[1] for w in windows)
        return [BackfillWalk(f"{since:%Y-%m-%d} to {until:%Y-%m-%d}", windows,
                             lambda: self._walk(since, until, False, until, held))]

    def listed_ids(self, started: datetime) -> set[str]:
        """The walk is newest first, so it ends by re-reading the top of the list down to where
        it began, where chats updated meanwhile went."""
        ids: set[str] = set()
        for since in (None, started - timedelta(seconds=self.options.safety_margin_seconds)):
            for page in self._chats().walk(since):
                ids.update(r["id"] for r in page.records if isinstance(r, dict) and isinstance(r.get("id"), str))
        return ids

    def _walk(self, start: datetime | None, until: datetime | None, force: bool, watermark: datetime,
              held: HeldVersions) -> Iterator[Fetched]:
        """Messages are fetched only for chats whose updated_at moved. A chat that cannot be
        read is passed on as it is, for the transform to reject with its reason."""
        reader = self._chats()
        held_back: list[datetime] = []
        for page in reader.walk(start):
            keyed = [(r, _id(r), parse_time(r.get("updated_at")) if isinstance(r, dict) else None)
                     for r in page.records]
            if until is not None:
                keyed = [k for k in keyed if k[2] is None or start is None or start <= k[2] < until]
            versions = held([chat_id for _, chat_id, _ in keyed if chat_id is not None])
            changed = [k for k in keyed if force or k[1] is None or k[2] is None
                       or k[1] not in versions or k[2] > versions[k[1]]]
            messages, failed = reader.messages_of(
                {chat_id: LastMessage.of(record) for record, chat_id, _ in changed if chat_id is not None})
            held_back += [updated for _, chat_id, updated in changed if chat_id in failed and updated]
            # A chat gone since the list was read (404 on its messages) is left out: reconcile marks it.
            ready = [record for record, chat_id, _ in changed if chat_id is None or chat_id in messages]
            if page.count is not None:
                log.info("%s: chat list page %d of %d, %d chats changed", self.client.source, page.number,
                         max(1, -(-page.count // reader.take)), len(changed))
            yield Fetched(ready, len(page.records), children=messages,
                          deferred={chat_id: exc.cause for chat_id, exc in failed.items()})
        # A chat left behind must come inside the next run's range again.
        yield Fetched([], 0, watermark=min([watermark, *held_back]))


def _id(record: Any) -> str | None:
    chat_id = record.get("id") if isinstance(record, dict) else None
    return chat_id if isinstance(chat_id, str) and chat_id else None

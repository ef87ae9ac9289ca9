"""What chatsync assumes of Cozmox's chat list, probed with four requests:

1. limit = the page size syncs ask for, oldest first: page size, order, times, metadata
2. limit = 10, newest first: page size, order, metadata
3. limit = 10, page 2, oldest first: metadata across pages
4. a one-millisecond updatedAt window at the updatedAt of a chat from (1): the filters

The windowed walk (extract/cozmox.py) needs the filters honoured with `updatedAtGe` inclusive,
and the metadata's totalItems to tell a whole window from a full page; it reads on when pages
come smaller than asked, and relies on no particular sort key, only on ASC and DESC being
opposite orders of one timestamp (its last resort pages a millisecond both ways).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from extract.cozmox import MS, floor_ms, iso, list_params
from extract.doctor import (
    RATE,
    Answer,
    Check,
    Verdict,
    ask,
    direction,
    distinct,
    rate_limit,
    stamp,
    time_format,
    times_of,
)
from extract.settings import COZMOX_CHATS_PATH, COZMOX_REQUESTS_PER_MINUTE
from extract.times import time_or_none

if TYPE_CHECKING:
    from extract.cozmox import Cozmox

SMALL = 10
KEYS = ("createdAt", "updatedAt")

PAGE_SIZE = "page size: limit is honoured"
WINDOW = "updatedAtGe/updatedAtLt filters are honoured: every chat of a window lies inside it"
SORT_KEY = "sortOrder orders by a timestamp (createdAt or updatedAt)"
SORT_ORDER = "sortOrder=ASC is oldest first and DESC newest first"
TIMES = "createdAt/updatedAt are ISO-8601 date-times with a zone and milliseconds"
METADATA = "metadata (itemsPerPage, totalItems, currentPage) is present and consistent"
ASSUMPTIONS = (PAGE_SIZE, WINDOW, SORT_KEY, SORT_ORDER, TIMES, METADATA, RATE)  # as reported


@dataclass
class Asked:
    """One page asked for, and what came back."""

    params: dict[str, Any]
    answer: Answer

    @property
    def query(self) -> str:
        return "&".join(f"{k}={v}" for k, v in self.params.items())

    @property
    def chats(self) -> list[Any] | None:
        body = self.answer.body
        return body["results"] if isinstance(body, dict) and isinstance(body.get("results"), list) else None

    def meta(self, name: str) -> int | None:
        body = self.answer.body
        metadata = body.get("metadata") if isinstance(body, dict) else None
        value = metadata.get(name) if isinstance(metadata, dict) else None
        return value if isinstance(value, int) and not isinstance(value, bool) else None


def checks(source: Cozmox) -> list[Check]:
    def page(params: dict[str, Any]) -> Asked:
        return Asked(params, ask(source.client, COZMOX_CHATS_PATH, params))

    oldest = page(list_params(None, None, limit=source.options.page_size))
    if oldest.answer.refused is not None:
        raise oldest.answer.refused  # nothing else can be probed: said as an account's failure
    rate = rate_limit(oldest.answer.headers, f"chatsync reads Cozmox without a ceiling of its own, assuming "
                                             f"about {COZMOX_REQUESTS_PER_MINUTE} a minute", COZMOX_REQUESTS_PER_MINUTE)
    if oldest.chats is None:
        unread = f"GET {COZMOX_CHATS_PATH}?{oldest.query} answered no results list"
        return [Check(name, Verdict.VIOLATED if name == METADATA else Verdict.UNKNOWN, unread)
                for name in ASSUMPTIONS if name != RATE] + [rate]
    newest = page(list_params(None, None, limit=SMALL, order="DESC"))
    second = page(list_params(None, None, limit=SMALL, page=2))
    window = _window(oldest, page)
    pages = [oldest, newest, second]
    key, sort_key = _sort_key(oldest, newest)
    return [
        _page_size([oldest, newest]),
        window,
        sort_key,
        _sort_order(key, oldest, newest),
        time_format(TIMES, {name: [c.get(name) for c in distinct(p.chats or [] for p in pages)] for name in KEYS}),
        _metadata(pages),
        rate,
    ]


def _page_size(pages: list[Asked]) -> Check:
    seen, wrong, telling = [], [], False
    for p in pages:
        limit, total, got = p.params["limit"], p.meta("totalItems"), len(p.chats or [])
        seen.append(f"limit={limit}: {got}" + (f" of totalItems {total}" if total is not None else ""))
        if got > limit or (total is not None and got < min(limit, total)):
            wrong.append(seen[-1])
        telling = telling or (total is not None and total > limit) or (total is None and got == limit)
    if wrong:
        return Check(PAGE_SIZE, Verdict.VIOLATED, f"asked {'; '.join(wrong)}")
    if not telling:
        return Check(PAGE_SIZE, Verdict.UNKNOWN, f"too few chats to tell: {'; '.join(seen)}")
    return Check(PAGE_SIZE, Verdict.OK, f"asked {'; '.join(seen)}")


def _window(oldest: Asked, page: Callable[[dict[str, Any]], Asked]) -> Check:
    """A window one millisecond wide at a chat's own updatedAt: that chat must come back
    (updatedAtGe is inclusive), and nothing from outside."""
    read = [(c, time_or_none(c.get("updatedAt"))) for c in oldest.chats or [] if isinstance(c, dict)]
    dated = [(c, t) for c, t in read if t is not None]
    if not dated:
        return Check(WINDOW, Verdict.UNKNOWN, "no chat with a readable updatedAt to build a window around")
    chosen, updated = dated[len(dated) // 2]
    start = floor_ms(updated)
    asked = page(list_params(start, start + MS, limit=SMALL))
    query = f"updatedAtGe={iso(start)}&updatedAtLt={iso(start + MS)}"
    if asked.answer.refused is not None:
        return Check(WINDOW, Verdict.VIOLATED, f"{query} was refused: {asked.answer.refused.cause}")
    if asked.chats is None:
        return Check(WINDOW, Verdict.VIOLATED, f"{query} answered no results list")
    times = times_of(asked.chats, "updatedAt")
    outside = [(c, t) for c, t in zip(asked.chats, times, strict=True) if t is None or not start <= t < start + MS]
    total = asked.meta("totalItems")
    said = f"{query} answered {len(asked.chats)} chat(s)" + (f" of totalItems {total}" if total is not None else "")
    if outside:
        chat, when = outside[0]
        name = chat.get("id") if isinstance(chat, dict) else chat
        return Check(WINDOW, Verdict.VIOLATED, f"{said}, {len(outside)} outside it (e.g. {name} at {stamp(when)})")
    if chosen.get("id") not in [c.get("id") for c in asked.chats if isinstance(c, dict)]:
        return Check(WINDOW, Verdict.VIOLATED, f"{said}, without chat {chosen.get('id')} updated at "
                                               f"{chosen['updatedAt']}: updatedAtGe left out its own instant")
    return Check(WINDOW, Verdict.OK, f"{said}, all inside, chat {chosen.get('id')} among them")


def _sort_key(oldest: Asked, newest: Asked) -> tuple[str | None, Check]:
    """The timestamps both pages are in order of, in either direction (their direction is the
    next check's)."""
    pages = [(p, p.chats or []) for p in (oldest, newest)]
    if all(len(chats) < 2 for _, chats in pages):
        return None, Check(SORT_KEY, Verdict.UNKNOWN, "fewer than two chats on a page")
    keys = []
    for key in KEYS:
        ways = [direction(times_of(chats, key)) for _, chats in pages]
        if None not in ways and ways != ["flat", "flat"]:
            keys.append(key)
    sizes = f"a page of {len(pages[0][1])} (ASC) and of {len(pages[1][1])} (DESC)"
    if not keys:
        shown = ", ".join(stamp(t) for t in times_of(pages[0][1][:4], KEYS[0]))
        return None, Check(SORT_KEY, Verdict.VIOLATED, f"neither createdAt nor updatedAt orders {sizes} "
                                                       f"(createdAt on the ASC page: {shown}, ...)")
    also = f" ({keys[1]} too, on these)" if len(keys) > 1 else ""
    return keys[0], Check(SORT_KEY, Verdict.OK, f"{sizes} are in {keys[0]} order{also}; chatsync relies on "
                                                f"no particular key")


def _sort_order(key: str | None, oldest: Asked, newest: Asked) -> Check:
    if key is None:
        return Check(SORT_ORDER, Verdict.UNKNOWN, "no timestamp orders the pages")
    said, wrong = [], []
    for p, wanted, word in ((oldest, "up", "oldest"), (newest, "down", "newest")):
        times = times_of(p.chats or [], key)
        way = direction(times)
        said.append(f"sortOrder={p.params['sortOrder']}: {key} from {stamp(times[0]) if times else '-'} "
                    f"{'to' if way == 'flat' else (way or 'in no order') + ' to'} {stamp(times[-1]) if times else '-'}")
        if way not in (wanted, "flat"):
            wrong.append(f"sortOrder={p.params['sortOrder']} came back {'newest' if word == 'oldest' else 'oldest'} "
                         f"first")
    if wrong:
        return Check(SORT_ORDER, Verdict.VIOLATED, f"{'; '.join(wrong)} ({'; '.join(said)})")
    return Check(SORT_ORDER, Verdict.OK, "; ".join(said))


def _metadata(pages: list[Asked]) -> Check:
    wrong = []
    for p in pages:
        asked = f"page={p.params['page']}&limit={p.params['limit']}"
        values = {name: p.meta(name) for name in ("itemsPerPage", "totalItems", "currentPage")}
        per, total, current = values["itemsPerPage"], values["totalItems"], values["currentPage"]
        if per is None or total is None or current is None:
            missing = [name for name, value in values.items() if value is None]
            wrong.append(f"{asked}: no metadata.{', metadata.'.join(missing)}")
            continue
        got = len(p.chats or [])
        if current != p.params["page"]:
            wrong.append(f"{asked}: currentPage {current}")
        if not got <= per <= p.params["limit"]:
            wrong.append(f"{asked}: itemsPerPage {per} with {got} chats served")
        if got and total < (p.params["page"] - 1) * per + got:
            wrong.append(f"{asked}: {got} chats after the first {(p.params['page'] - 1) * per}, "
                         f"yet totalItems {total}")
    totals = [p.meta("totalItems") for p in pages]
    if None not in totals and len(set(totals)) > 1:
        wrong.append(f"totalItems {', '.join(map(str, totals))} for the same list, moments apart")
    if wrong:
        return Check(METADATA, Verdict.VIOLATED, "; ".join(wrong))
    def listed(values: list[Any]) -> str:
        return ", ".join(map(str, values))

    return Check(METADATA, Verdict.OK, f"totalItems {totals[0]} on all {len(pages)} pages; itemsPerPage "
                                       f"{listed([p.meta('itemsPerPage') for p in pages])} and currentPage "
                                       f"{listed([p.meta('currentPage') for p in pages])} to limit "
                                       f"{listed([p.params['limit'] for p in pages])} and page "
                                       f"{listed([p.params['page'] for p in pages])}")


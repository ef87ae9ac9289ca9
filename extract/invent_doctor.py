"""What chatsync assumes of Invent, probed with at most nine requests:

1. the chat list, page 1, take = what syncs ask: take, headers, order, times, org
2. page 2 with take 5: headers across pages
3. (org c only) the list under the org id its chats name, take 5: the shorthand
4. the messages of a listed chat (of up to three, until one has messages at two instants)
5. the same messages from the middle one's created_at, with the assumed date parameter
6. likewise with each other name for it, where the assumed one did not filter

The walk (extract/invent.py) stops early on the list's newest-first order and ends pages by
their length with the count header as a cross-check; `c` and the org's id are one account when
the chats name their org; messages are read oldest first, a request a chat.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from extract.cozmox import iso
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
from extract.http import SourceRequestError
from extract.settings import (
    INVENT_CHATS_PATH,
    INVENT_COUNT_HEADER,
    INVENT_DEFAULT_ORG,
    INVENT_MAX_TAKE,
    INVENT_MESSAGES_PATH,
    INVENT_MESSAGES_SINCE,
    INVENT_MESSAGES_SINCE_ELSEWHERE,
    INVENT_PAGE_HEADER,
    INVENT_REQUESTS_PER_MINUTE,
    INVENT_TAKE_HEADER,
)

if TYPE_CHECKING:
    from extract.invent import Invent

SMALL = 5
_CHATS_TRIED = 3

TAKE = "page size: take is honoured"
HEADERS = f"{INVENT_COUNT_HEADER}/{INVENT_PAGE_HEADER}/{INVENT_TAKE_HEADER} headers are present and consistent"
ORDER = "the chat list is newest activity first (updated_at descending)"
TIMES = "updated_at (chats) and created_at (messages) are ISO-8601 date-times with a zone and milliseconds"
ORG = f"org shorthand {INVENT_DEFAULT_ORG} is one org, whose id lists the same chats"
MESSAGES_PATH = f"messages are at GET {INVENT_MESSAGES_PATH} (a JSON array)"
MESSAGES_ORDER = "a chat's messages come oldest first (created_at ascending)"
MESSAGES_SINCE = f"the messages' start date is the parameter {INVENT_MESSAGES_SINCE!r}"
ASSUMPTIONS = (TAKE, HEADERS, ORDER, TIMES, ORG, MESSAGES_PATH, MESSAGES_ORDER, MESSAGES_SINCE, RATE)  # as reported


@dataclass
class Listed:
    """One page asked for, and what came back."""

    path: str
    params: dict[str, Any]
    answer: Answer

    @property
    def query(self) -> str:
        return f"{self.path}?" + "&".join(f"{k}={v}" for k, v in self.params.items())

    @property
    def records(self) -> list[Any]:
        return self.answer.body if isinstance(self.answer.body, list) else []

    def header(self, name: str) -> int | None:
        try:
            return int(self.answer.headers.get(name, ""))
        except (AttributeError, ValueError):
            return None


def _list(source: Invent, path: str, **params: Any) -> Listed:
    return Listed(path, params, ask(source.client, path, params))


def _ids(records: list[Any]) -> list[Any]:
    return [r.get("id") if isinstance(r, dict) else None for r in records]


def checks(source: Invent) -> list[Check]:
    org = source.org or INVENT_DEFAULT_ORG
    take = min(source.options.page_size, INVENT_MAX_TAKE)
    path = INVENT_CHATS_PATH.format(org_id=org)
    first = _list(source, path, page=1, take=take)
    rate = _rate(source, first.answer.headers)
    refused = first.answer.refused
    if refused is not None and refused.status != 404:
        raise refused  # nothing else can be probed: said as an account's failure
    if refused is not None:
        hint = "; set INVENT_ORG_ID to the org's id" if org == INVENT_DEFAULT_ORG else ""
        return _unread(ORG, refused.cause + hint, rate)
    if not isinstance(first.answer.body, list):
        return _unread(ORDER, f"GET {first.query} answered a JSON {type(first.answer.body).__name__}, not an array",
                       rate)
    second = _list(source, path, page=2, take=SMALL)
    org_check, under_id = _org(source, org, first)
    messages = _Messages(source, take, first.records)
    chats = distinct([first.records, second.records])
    return [
        _take([first, second]),
        _headers([first, second] + ([under_id] if under_id is not None else [])),
        _order(first),
        time_format(TIMES, {"updated_at": [c.get("updated_at") for c in chats],
                            "message created_at": [m.get("created_at") if isinstance(m, dict) else None
                                                   for m in messages.body]},
                    lenient={"created_at (chats)": [c.get("created_at") for c in chats]}),
        org_check,
        messages.path_check,
        messages.order(),
        messages.since(),
        rate,
    ]


def _unread(broken: str, said: str, rate: Check) -> list[Check]:
    """A chat list that could not be read: the assumption it breaks, and nothing else to tell."""
    return [Check(name, Verdict.VIOLATED, said) if name == broken
            else Check(name, Verdict.UNKNOWN, "the chat list could not be read")
            for name in ASSUMPTIONS if name != RATE] + [rate]


def _rate(source: Invent, headers: Any) -> Check:
    interval = source.client.rate_limit.interval
    if interval:
        return rate_limit(headers, f"chatsync sends up to {60 / interval:g} a minute "
                                   f"(CHATSYNC_INVENT_REQUESTS_PER_MINUTE)", 60 / interval)
    return rate_limit(headers, f"chatsync sends without a ceiling (CHATSYNC_INVENT_REQUESTS_PER_MINUTE=0), assuming "
                               f"the documented {INVENT_REQUESTS_PER_MINUTE} a minute", INVENT_REQUESTS_PER_MINUTE)


def _take(pages: list[Listed]) -> Check:
    seen, wrong, telling = [], [], False
    for p in pages:
        take, number, count, got = p.params["take"], p.params["page"], p.header(INVENT_COUNT_HEADER), len(p.records)
        seen.append(f"take={take}&page={number}: {got}" + (f" of {INVENT_COUNT_HEADER} {count}" if count is not None
                                                           else ""))
        left = None if count is None else max(0, count - (number - 1) * take)
        if got > take or (left is not None and got < min(take, left)):
            wrong.append(seen[-1])
        telling = telling or (left is not None and left > take) or (left is None and got == take)
    if wrong:
        return Check(TAKE, Verdict.VIOLATED, f"asked {'; '.join(wrong)}")
    if not telling:
        return Check(TAKE, Verdict.UNKNOWN, f"too few chats to tell: {'; '.join(seen)}")
    return Check(TAKE, Verdict.OK, f"asked {'; '.join(seen)}")


def _headers(pages: list[Listed]) -> Check:
    wrong: list[str] = []
    names = (INVENT_COUNT_HEADER, INVENT_PAGE_HEADER, INVENT_TAKE_HEADER)
    absent = {p.query: [name for name in names if p.header(name) is None] for p in pages}
    if len({tuple(missing) for missing in absent.values()}) == 1 and absent[pages[0].query]:
        return Check(HEADERS, Verdict.VIOLATED, f"no {', '.join(absent[pages[0].query])} on any of {len(pages)} "
                                                f"pages (GET {', '.join(absent)})")
    for p in pages:
        if absent[p.query]:
            wrong.append(f"no {', '.join(absent[p.query])} on GET {p.query}")
            continue
        count, number, take = (p.header(name) or 0 for name in names)  # none is absent here
        got, before = len(p.records), (p.params["page"] - 1) * take
        if number != p.params["page"]:
            wrong.append(f"{INVENT_PAGE_HEADER} {number} on GET {p.query}")
        if not got <= take <= p.params["take"]:
            wrong.append(f"{INVENT_TAKE_HEADER} {take} with {got} chats served on GET {p.query}")
        if got and count < before + got:
            wrong.append(f"{got} chats after the first {before} (GET {p.query}), yet {INVENT_COUNT_HEADER} {count}")
    counts = [p.header(INVENT_COUNT_HEADER) for p in pages]
    if None not in counts and len(set(counts)) > 1:
        wrong.append(f"{INVENT_COUNT_HEADER} {', '.join(map(str, counts))} for the same list, moments apart")
    if wrong:
        return Check(HEADERS, Verdict.VIOLATED, "; ".join(wrong))

    def listed(values: list[Any]) -> str:
        return ", ".join(map(str, values))

    echoed = {name: listed([p.header(name) for p in pages]) for name in names}
    asked = {name: listed([p.params[name] for p in pages]) for name in ("page", "take")}
    return Check(HEADERS, Verdict.OK, f"{INVENT_COUNT_HEADER} {counts[0]} on all {len(pages)} pages; "
                                      f"{INVENT_PAGE_HEADER} {echoed[INVENT_PAGE_HEADER]} and {INVENT_TAKE_HEADER} "
                                      f"{echoed[INVENT_TAKE_HEADER]} to page {asked['page']} and take {asked['take']}")


def _order(first: Listed) -> Check:
    times = [t for t in times_of(first.records, "updated_at") if t is not None]
    if len(set(times)) < 2:
        return Check(ORDER, Verdict.UNKNOWN, f"{len(times)} chat(s) with a readable updated_at, too few to tell")
    way = direction(times)
    if way in ("down", "flat"):
        return Check(ORDER, Verdict.OK, f"{len(times)} chats on page 1, updated_at {stamp(times[0])} down to "
                                        f"{stamp(times[-1])}")
    rises = [(a, b) for a, b in pairwise(times) if a < b]
    return Check(ORDER, Verdict.VIOLATED, f"updated_at rises {len(rises)} time(s) down page 1 of {len(times)} chats "
                                          f"(e.g. {stamp(rises[0][0])} then {stamp(rises[0][1])})")


def _org(source: Invent, org: str, first: Listed) -> tuple[Check, Listed | None]:
    """The org the chats name; under `c`, its id must list the same chats."""
    if not first.records:
        return Check(ORG, Verdict.UNKNOWN, f"GET {first.query} listed no chats"), None
    named = sorted({str(r.get("org_id")) for r in first.records if isinstance(r, dict)})
    if org != INVENT_DEFAULT_ORG:
        if named == [org]:
            return Check(ORG, Verdict.OK, f"org {org} is configured by id, and its {len(first.records)} chat(s) "
                                          f"name it"), None
        return Check(ORG, Verdict.VIOLATED, f"the chats of org {org} name {', '.join(named)}"), None
    if len(named) != 1 or named == ["None"]:
        return Check(ORG, Verdict.VIOLATED, f"the {len(first.records)} chats under {org} name "
                                            f"{', '.join(named)} as their org_id; chatsync keeps state by one "
                                            f"org id"), None
    under_id = _list(source, INVENT_CHATS_PATH.format(org_id=named[0]), page=1, take=SMALL)
    if under_id.answer.refused is not None:
        return Check(ORG, Verdict.VIOLATED, f"the chats under {org} name {named[0]}, but GET {under_id.query} "
                                            f"was refused: {under_id.answer.refused.cause}"), None
    ids, expected = _ids(under_id.records), _ids(first.records)[:len(under_id.records)]
    if not ids or ids != expected:
        return Check(ORG, Verdict.VIOLATED, f"the chats under {org} name {named[0]}, but GET {under_id.query} "
                                            f"lists {len(ids)} other chat(s) first"), under_id
    return Check(ORG, Verdict.OK, f"the {len(first.records)} chat(s) under {org} name {named[0]}, and "
                                  f"{INVENT_CHATS_PATH.format(org_id=named[0])} lists the same {len(ids)} "
                                  f"first"), under_id


class _Messages:
    """The messages of one listed chat, with instants enough to judge their order and filter."""

    def __init__(self, source: Invent, take: int, chats: list[Any]) -> None:
        self.source, self.take = source, take
        self.chat: str | None = None
        self.path = ""
        self.body: list[Any] = []
        named = [r for r in chats if isinstance(r, dict) and isinstance(r.get("id"), str)]
        listed = [r["id"] for r in named if r.get("last_message")] or [r["id"] for r in named]
        refusals: list[tuple[str, SourceRequestError]] = []
        for chat in listed[:_CHATS_TRIED]:
            path = INVENT_MESSAGES_PATH.format(chat_id=chat)
            answer = ask(source.client, path, {"page": 1, "take": take})
            if answer.refused is not None:
                refusals.append((chat, answer.refused))
                if len(refusals) > 1:
                    break
                continue
            if not isinstance(answer.body, list):
                self.path_check = Check(MESSAGES_PATH, Verdict.VIOLATED, f"GET {path} answered a JSON "
                                                                         f"{type(answer.body).__name__}, not an array")
                return
            self.chat, self.path, self.body = chat, path, answer.body
            if len(self.distinct()) > 1:
                break
        if self.chat is not None:
            after = f", after {refusals[0][1].cause} for chat {refusals[0][0]}" if refusals else ""
            self.path_check = Check(MESSAGES_PATH, Verdict.OK, f"GET {self.path} answered an array of "
                                                               f"{len(self.body)} message(s){after}")
        elif refusals:
            refused = ", ".join(chat for chat, _ in refusals)
            self.path_check = Check(MESSAGES_PATH, Verdict.VIOLATED,
                                    f"refused for {len(refusals)} chat(s) the list shows ({refused}): "
                                    f"{refusals[-1][1].cause}")
        else:
            self.path_check = Check(MESSAGES_PATH, Verdict.UNKNOWN, "the list shows no chat to read messages of")

    def times(self, body: list[Any]) -> list[datetime]:
        return [t for t in times_of(body, "created_at") if t is not None]

    def distinct(self) -> list[datetime]:
        return sorted(set(self.times(self.body)))

    def order(self) -> Check:
        times = self.times(self.body)
        if len(set(times)) < 2:
            return Check(MESSAGES_ORDER, Verdict.UNKNOWN, self._too_few())
        said = f"{len(times)} messages of chat {self.chat}, created_at {stamp(times[0])} to {stamp(times[-1])}"
        way = direction(times)
        if way == "up":
            return Check(MESSAGES_ORDER, Verdict.OK, said)
        if way == "down":
            return Check(MESSAGES_ORDER, Verdict.VIOLATED, f"newest first: {said}")
        return Check(MESSAGES_ORDER, Verdict.VIOLATED, f"in no created_at order: {said}")

    def since(self) -> Check:
        distinct = self.distinct()
        if len(distinct) < 2:
            return Check(MESSAGES_SINCE, Verdict.UNKNOWN, self._too_few())
        start = distinct[len(distinct) // 2]
        filters, said = self._filtered(INVENT_MESSAGES_SINCE, start)
        if filters:
            return Check(MESSAGES_SINCE, Verdict.OK, said)
        elsewhere = []
        for name in INVENT_MESSAGES_SINCE_ELSEWHERE:
            works, other = self._filtered(name, start)
            elsewhere.append(other)
            if works:
                return Check(MESSAGES_SINCE, Verdict.VIOLATED, f"{said}; {other}: the parameter is {name!r}")
        return Check(MESSAGES_SINCE, Verdict.VIOLATED, "; ".join([said, *elsewhere]) + "; no name tried filters")

    def _filtered(self, name: str, start: datetime) -> tuple[bool, str]:
        asked = f"{name}={iso(start)}"
        answer = ask(self.source.client, self.path, {"page": 1, "take": self.take, name: iso(start)})
        if answer.refused is not None:
            return False, f"{asked} was refused ({answer.refused.cause})"
        if not isinstance(answer.body, list):
            return False, f"{asked} answered no array"
        before = sum(1 for t in self.times(answer.body) if t < start)
        earlier = sum(1 for t in self.times(self.body) if t < start)
        said = f"{asked}: {len(answer.body)} message(s) of chat {self.chat}, {before} before it"
        if before or not answer.body:
            return False, said + (", as without it: ignored" if before >= earlier else "")
        return True, f"{said} ({earlier} of the {len(self.body)} without it were)"

    def _too_few(self) -> str:
        if self.chat is None:
            return "no messages could be read"
        return f"chat {self.chat}'s messages are at fewer than two instants"

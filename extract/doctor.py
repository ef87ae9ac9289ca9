"""What `chatsync doctor` reports: a verdict on each assumption chatsync makes about an API, with
the evidence a handful of requests gave. Each source probes its own API (`Source.doctor`); what
the probes share is here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from itertools import pairwise
from typing import Any

from extract.http import ApiClient, SourceRequestError
from extract.settings import RATE_LIMIT_HEADERS, RATE_REMAINING_HEADERS
from extract.times import time_or_none


class Verdict(str, Enum):
    OK = "OK"  # the evidence agrees with the assumption
    VIOLATED = "VIOLATED"  # it contradicts what the code assumes
    UNKNOWN = "UNKNOWN"  # the probe cannot tell (too few chats, an optional header absent)


@dataclass(frozen=True)
class Check:
    assumption: str
    verdict: Verdict
    evidence: str


@dataclass
class Answer:
    """One probe's response; `refused` where the API answered 4xx to what was asked."""

    body: Any = None
    headers: Any = None
    refused: SourceRequestError | None = None


def ask(client: ApiClient, path: str, params: dict[str, Any]) -> Answer:
    """A GET whose refusal is evidence, not a failure. A rejected key or an API out of reach
    still raises: then nothing can be probed."""
    try:
        body, headers = client.get(path, params)
    except SourceRequestError as exc:
        if exc.status is None:  # not an HTTP URL: the configuration, not the API
            raise
        return Answer(refused=exc)
    return Answer(body, headers)


RATE = "rate limit: the API allows what chatsync sends"

_BARE_DATE = re.compile(r"\d{4}-\d\d-\d\d")
_DATE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?P<fraction>\.\d+)?(?P<zone>Z|[+-]\d\d:?\d\d)?")


def time_flaw(value: Any) -> str | None:
    """What keeps a time from being an ISO-8601 date-time with a zone and milliseconds."""
    if not isinstance(value, str):
        return "not a string"
    if _BARE_DATE.fullmatch(value):
        return "a bare date"
    shape = _DATE_TIME.fullmatch(value)
    if shape is None or time_or_none(value) is None:
        return "not an ISO-8601 date-time"
    if shape["zone"] is None:
        return "without a zone"
    if shape["fraction"] is None or len(shape["fraction"]) < 4:
        return "without milliseconds"
    return None


def time_format(assumption: str, values: dict[str, list[Any]], lenient: dict[str, list[Any]] | None = None) -> Check:
    """`values`: field -> the values seen, each of which must be a full date-time. `lenient`:
    fields whose bare dates the code reads as midnight, reported but not held against the API."""
    flaws: list[str] = []
    seen = 0
    for name, found in values.items():
        seen += len(found)
        counted: dict[str, list[Any]] = {}
        for value in found:
            flaw = time_flaw(value)
            if flaw:
                counted.setdefault(flaw, []).append(value)
        flaws += [f"{name} {flaw} in {len(bad)} of {len(found)} (e.g. {bad[0]!r})" for flaw, bad in counted.items()]
    notes = []
    for name, found in (lenient or {}).items():
        dates = [v for v in found if isinstance(v, str) and _BARE_DATE.fullmatch(v)]
        if dates:
            notes.append(f"{name} a bare date in {len(dates)} of {len(found)}, read as midnight UTC")
    if not seen:
        return Check(assumption, Verdict.UNKNOWN, "no records to read times from")
    if flaws:
        return Check(assumption, Verdict.VIOLATED, "; ".join(flaws + notes))
    example = next(v for found in values.values() for v in found)
    return Check(assumption, Verdict.OK, "; ".join([f"{seen} of {seen} like {example!r}", *notes]))


def distinct(pages: Iterable[list[Any]]) -> list[dict[str, Any]]:
    """The records of overlapping pages, each once (by id)."""
    found: dict[Any, dict[str, Any]] = {}
    for records in pages:
        for record in records:
            if isinstance(record, dict):
                found.setdefault(record.get("id", id(record)), record)
    return list(found.values())


def times_of(records: list[Any], name: str) -> list[datetime | None]:
    return [time_or_none(r.get(name)) if isinstance(r, dict) else None for r in records]


def direction(times: Sequence[datetime | None]) -> str | None:
    """'up', 'down' or 'flat' where these times are in one order; None where they are not, or
    where any is missing."""
    known = [t for t in times if t is not None]
    if len(known) < len(times):
        return None
    ups = any(a < b for a, b in pairwise(known))
    downs = any(a > b for a, b in pairwise(known))
    if ups and downs:
        return None
    return "up" if ups else "down" if downs else "flat"


def stamp(ts: datetime | None) -> str:
    """A time as short as it is precise."""
    if ts is None:
        return "?"
    spec = "seconds" if not ts.microsecond else "milliseconds" if not ts.microsecond % 1000 else "microseconds"
    return ts.isoformat(timespec=spec).replace("+00:00", "Z")


def rate_limit(headers: Any, allowed: str, sends_per_minute: float) -> Check:
    """The API's own rate-limit headers against what chatsync sends. Neither API documents any,
    so their absence is no violation; a limit is read as a minute's allowance."""
    assumption = RATE
    if headers is None:
        return Check(assumption, Verdict.UNKNOWN, "no response to read headers from")
    name = next((n for n in RATE_LIMIT_HEADERS if n in headers), None)
    if name is None:
        return Check(assumption, Verdict.UNKNOWN, f"no rate-limit headers ({', '.join(RATE_LIMIT_HEADERS)}); "
                                                  f"{allowed}, and honours Retry-After on a 429")
    remaining = next((f", {n}: {headers[n]}" for n in RATE_REMAINING_HEADERS if n in headers), "")
    try:
        limit = float(headers[name])
    except ValueError:
        return Check(assumption, Verdict.UNKNOWN, f"{name}: {headers[name]!r} is not a number")
    said = f"{name}: {headers[name]} (read as a minute's allowance){remaining}; {allowed}"
    if limit < sends_per_minute:
        return Check(assumption, Verdict.VIOLATED, said)
    return Check(assumption, Verdict.OK, said)

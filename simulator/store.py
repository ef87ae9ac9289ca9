"""The Simulator: the state behind both simulated APIs, its mutations, faults and request log.

Every record keeps its JSON bytes cached (and the embedded assistant configurations, tens of KB
each, are serialised once and spliced in), so a page is served by joining bytes rather than by
re-encoding thousands of dictionaries per request.
"""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any

import orjson

from simulator.broken import known
from simulator.data import UTC, CozmoxFactory, Made, clone, iso_ms, parse_us, to_ms, total_cost, uid
from simulator.data_invent import InventFactory
from simulator.faults import Fault, RequestInfo, select_faults

SOURCES = ("cozmox", "invent")
TIME_FIELDS = {"cozmox": ("createdAt", "updatedAt"), "invent": ("created_at", "updated_at")}
_SPLICE = "\x00shared\x00"
_SPLICE_JSON = orjson.dumps(_SPLICE)
_UNSET: Any = object()
NO_BOUND = (-(2**62), 2**62)
FREEZE_ABOVE = 200_000  # tracked objects created while generating


class _Missing:
    def __repr__(self) -> str:
        return "Simulator.MISSING"


class Record:
    """A record, the instants it sorts and filters on (epoch µs), and its cached JSON."""

    __slots__ = ("created_us", "data", "id", "parts", "updated_us")

    def __init__(self, data: dict[str, Any], created_ms: int, updated_ms: int) -> None:
        self.id: str = data["id"]
        self.data = data
        self.created_us = created_ms * 1000
        self.updated_us = updated_ms * 1000
        self.parts: tuple[bytes, ...] | None = None

    def chunks(self, shared: dict[int, bytes]) -> tuple[bytes, ...]:
        if self.parts is None:
            blob = shared.get(id(self.data.get("assistant")))
            if blob is not None:
                raw = orjson.dumps({**self.data, "assistant": _SPLICE})
                head, tail = raw.split(_SPLICE_JSON, 1)
                self.parts = (head, blob, tail)
            else:
                # orjson returns its over-allocated output buffer shrunk in place, which
                # fragments the heap (~4 KB of RSS per small record); an exact copy does not.
                self.parts = (bytes(memoryview(orjson.dumps(self.data))),)
        return self.parts


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Building a large history allocates about a million containers: collection passes would
    dominate the time spent, and afterwards every full pass over them would stall a request
    for most of a second. A large history lives as long as its simulator, so it is frozen out
    of the collector's reach (reference counting still frees it; only a reference cycle through
    a frozen simulator, such as a hook closing over it, would keep it alive). Small histories,
    as in tests, are left to the collector."""
    enabled = gc.isenabled()
    gc.disable()
    before = gc.get_count()[0]
    try:
        yield
    finally:
        if gc.get_count()[0] - before > FREEZE_ABOVE:
            gc.freeze()
        if enabled:
            gc.enable()


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; one of {SOURCES}")


def _floor_now() -> datetime:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now - timedelta(minutes=10)


class Simulator:
    """Seeded, deterministic state of the Cozmox and Invent APIs, mutable while it is served."""

    MISSING: Any = _Missing()

    def __init__(self, seed: int = 7, cozmox_chats: int = 200, invent_chats: int = 50,
                 api_key: str = "sim-key", history_days: float = 30,
                 history_end: datetime | None = None, lag: timedelta = timedelta(seconds=1),
                 cozmox_sort_key: str = "createdAt", assistant_embed_ratio: float = 0.3,
                 tie_ratio: float = 0.1, broken: Iterable[str] = ()) -> None:
        if cozmox_sort_key not in ("createdAt", "updatedAt"):
            raise ValueError("cozmox_sort_key must be 'createdAt' or 'updatedAt'")
        self.seed, self.api_key, self.lag = seed, api_key, lag
        self.cozmox_sort_key = cozmox_sort_key
        self.broken = known(broken)  # names from simulator.broken.BROKEN_ASSUMPTIONS
        end = history_end or _floor_now()
        self.history_end = end if end.tzinfo else end.replace(tzinfo=UTC)
        self.history_start = self.history_end - timedelta(days=history_days)
        self.lock = threading.RLock()
        end_ms, window_ms = to_ms(self.history_end), int(history_days * 86_400_000)
        self._cf = CozmoxFactory(seed, assistant_embed_ratio)
        self._if = InventFactory(seed)
        self.cozmox_org_id, self.invent_org_id = self._cf.org_id, self._if.org_id
        self._shared = {id(cfg): orjson.dumps(cfg) for _, cfg in self._cf.assistants}
        self._chats: dict[str, dict[str, Record]] = {"cozmox": {}, "invent": {}}
        self._messages: dict[str, list[Record]] = {}
        with _gc_paused():
            for made in self._cf.history(cozmox_chats, end_ms, window_ms, tie_ratio):
                self._register("cozmox", made)
            for made in self._if.history(invent_chats, end_ms, window_ms, tie_ratio):
                self._register("invent", made)
        self._order: dict[str, list[Record] | None] = {"cozmox": None, "invent": None}
        self._hooks: list[Callable[[RequestInfo], None]] = []
        self._faults: list[Fault] = []
        self._counters = dict.fromkeys(SOURCES, 0)
        self._last_pages: OrderedDict[str, tuple[int, list[tuple[bytes, bytes]], bytes]] = \
            OrderedDict()
        self._last_pages_size = 0
        self.requests: list[RequestInfo] = []
        self.errors: list[BaseException] = []  # exceptions raised by hooks or handlers

    # -- time -------------------------------------------------------------------------------

    def now(self) -> datetime:
        """Wall-clock UTC minus the lag, to ms: what the upstream clock reads for a mutation."""
        now = datetime.now(UTC) - self.lag
        return now.replace(microsecond=now.microsecond // 1000 * 1000)

    def _at_ms(self, at: datetime | str | None) -> int:
        if at is None:
            return to_ms(self.now())
        if isinstance(at, str):
            us = parse_us(at)
            if us is None:
                raise ValueError(f"not an ISO date-time: {at!r}")
            return us // 1000
        return to_ms(at)

    # -- records ----------------------------------------------------------------------------

    def _register(self, source: str, made: Made) -> Record:
        rec = Record(made.record, made.created_ms, made.updated_ms)
        self._chats[source][rec.id] = rec
        if source == "invent":
            msgs = [Record(m, c, u) for m, c, u in made.messages]
            msgs.sort(key=lambda r: (r.created_us, r.id))
            self._messages[rec.id] = msgs
        return rec

    def _chat(self, source: str, chat_id: str) -> Record:
        _check_source(source)
        try:
            return self._chats[source][chat_id]
        except KeyError:
            raise KeyError(f"no {source} chat {chat_id!r}") from None

    def _stamp(self, source: str, rec: Record, at_ms: int) -> None:
        rec.data[TIME_FIELDS[source][1]] = iso_ms(at_ms)
        rec.updated_us = at_ms * 1000
        rec.parts = None
        self._reorder(source, "updated")

    def _reorder(self, source: str, changed: str) -> None:
        """Forget the sorted order if the instant that changed is the one it sorts by."""
        sorts_by_update = source == "invent" or self.cozmox_sort_key == "updatedAt"
        sorts_by_creation = source == "cozmox" and self.cozmox_sort_key == "createdAt"
        if (changed == "updated" and sorts_by_update) or (changed == "created" and sorts_by_creation):
            self._order[source] = None

    def ordered(self, source: str) -> list[Record]:
        """Records ascending by (sort instant, id); rebuilt only after a change of instants."""
        order = self._order[source]
        if order is None:
            if source == "cozmox" and self.cozmox_sort_key == "createdAt":
                key = attrgetter("created_us", "id")
            else:
                key = attrgetter("updated_us", "id")
            order = self._order[source] = sorted(self._chats[source].values(), key=key)
        return order

    def shared_blobs(self) -> dict[int, bytes]:
        return self._shared

    def messages_of(self, chat_id: str) -> list[Record] | None:
        return self._messages.get(chat_id) if chat_id in self._chats["invent"] else None

    def _body(self, rec: Record) -> bytes:
        return b"".join(rec.chunks(self._shared))

    # -- truth for tests --------------------------------------------------------------------

    def cozmox_chats(self) -> list[dict[str, Any]]:
        """Every current Cozmox chat exactly as the API would return it, oldest created first."""
        with self.lock:
            return [orjson.loads(self._body(r)) for r in self._chats["cozmox"].values()]

    def invent_chats(self) -> list[dict[str, Any]]:
        with self.lock:
            return [orjson.loads(self._body(r)) for r in self._chats["invent"].values()]

    def invent_messages(self, chat_id: str) -> list[dict[str, Any]]:
        """A chat's messages in API order (created_at, then id)."""
        with self.lock:
            self._chat("invent", chat_id)
            return [orjson.loads(self._body(r)) for r in self._messages[chat_id]]

    def chat(self, source: str, chat_id: str) -> dict[str, Any]:
        with self.lock:
            return orjson.loads(self._body(self._chat(source, chat_id)))

    def chat_ids(self, source: str) -> list[str]:
        with self.lock:
            return list(self._chats[source])

    # -- mutations --------------------------------------------------------------------------

    def touch(self, source: str, chat_id: str, at: datetime | str | None = None,
              add_messages: int = 1) -> None:
        """New activity on a chat: more messages and a later updated-at."""
        with self.lock:
            rec, at_ms = self._chat(source, chat_id), self._at_ms(at)
            if source == "cozmox":
                self._cf.more_messages(rec.data, at_ms, add_messages)
            elif add_messages > 0:
                msgs = self._messages[chat_id]
                last_role = msgs[-1].data.get("role") if msgs else None
                for m, c, u in self._if.more_messages(rec.data, last_role, at_ms, add_messages):
                    msgs.append(Record(m, c, u))
                msgs.sort(key=lambda r: (r.created_us, r.id))
                self._set_last_message(rec)
                state = rec.data.get("state")
                if isinstance(state, dict) and isinstance(state.get("admin_unseen_count"), int):
                    state["admin_unseen_count"] += add_messages
            self._stamp(source, rec, at_ms)

    def _set_last_message(self, rec: Record) -> None:
        msgs = self._messages[rec.id]
        rec.data["last_message"] = clone(msgs[-1].data) if msgs else None

    def replace_messages(self, source: str, chat_id: str, messages: list[dict[str, Any]],
                         at: datetime | str | None = None, *, output: Any = _UNSET,
                         costs: Any = _UNSET) -> None:
        """Set a chat's messages exactly, so that tests can make children vanish."""
        with self.lock:
            rec, at_ms = self._chat(source, chat_id), self._at_ms(at)
            if source == "cozmox":
                rec.data["messages"] = clone(messages)
                if output is not _UNSET:
                    rec.data["output"] = clone(output)
                if costs is not _UNSET:
                    rec.data["costs"] = clone(costs)
                    cost = total_cost(costs) if isinstance(costs, list) else None
                    if cost is not None:
                        rec.data["cost"] = cost
            else:
                if output is not _UNSET or costs is not _UNSET:
                    raise ValueError("output= and costs= only exist on Cozmox chats")
                records = []
                for m in clone(messages):
                    m.setdefault("id", uid(self._if.rng))
                    m.setdefault("created_at", iso_ms(at_ms))
                    m.setdefault("updated_at", m["created_at"])
                    created = parse_us(m["created_at"])
                    created_ms = at_ms if created is None else created // 1000
                    records.append(Record(m, created_ms, created_ms))
                records.sort(key=lambda r: (r.created_us, r.id))
                self._messages[chat_id] = records
                self._set_last_message(rec)
            self._stamp(source, rec, at_ms)

    def add_chats(self, source: str, n: int, at: datetime | str | None = None) -> list[str]:
        """New chats, created and updated at `at` (default: now)."""
        with self.lock:
            _check_source(source)
            at_ms = self._at_ms(at)
            factory = self._cf if source == "cozmox" else self._if
            ids = [self._register(source, factory.new(at_ms)).id for _ in range(n)]
            self._order[source] = None
            return ids

    def delete(self, source: str, chat_id: str) -> None:
        with self.lock:
            self._chat(source, chat_id)
            del self._chats[source][chat_id]
            self._messages.pop(chat_id, None)
            self._order[source] = None

    def corrupt(self, source: str, chat_id: str, field: str, value: Any) -> None:
        """Set a raw field (dotted path into nested objects/lists) to a bad value, or remove it
        with `Simulator.MISSING`. The sort/filter instants follow only if the new value parses."""
        with self.lock:
            rec = self._chat(source, chat_id)
            path = field.split(".")
            container: Any = rec.data
            if len(path) > 1 and path[0] in rec.data:
                rec.data[path[0]] = clone(rec.data[path[0]])  # never edit a shared object
            for step in path[:-1]:
                container = container[int(step)] if isinstance(container, list) else container[step]
            last: Any = int(path[-1]) if isinstance(container, list) else path[-1]
            if value is Simulator.MISSING:
                if isinstance(container, list) or last in container:
                    del container[last]
            else:
                container[last] = value
            if len(path) == 1 and field in TIME_FIELDS[source]:
                us = parse_us(value)
                if us is not None:
                    if field == TIME_FIELDS[source][0]:
                        rec.created_us = us
                        self._reorder(source, "created")
                    else:
                        rec.updated_us = us
                        self._reorder(source, "updated")
            rec.parts = None

    def set_timestamp(self, source: str, chat_id: str, updated_at: datetime | str) -> None:
        """Force a chat's updated-at, e.g. to build ties across a page boundary."""
        with self.lock:
            rec = self._chat(source, chat_id)
            ms = self._at_ms(updated_at)
            self._stamp(source, rec, ms)
            if isinstance(updated_at, str):  # keep the caller's spelling, e.g. "+00:00"
                rec.data[TIME_FIELDS[source][1]] = updated_at
                rec.updated_us = parse_us(updated_at) or rec.updated_us

    def misplace(self, source: str, chat_id: str, updated_at: datetime | str) -> None:
        """Give a chat a new updated-at but leave it where it stood in the list order: an API
        whose order is not quite the order it claims."""
        with self.lock:
            rec = self._chat(source, chat_id)
            rec.data[TIME_FIELDS[source][1]] = iso_ms(self._at_ms(updated_at))
            rec.parts = None

    # -- broken assumptions -----------------------------------------------------------------

    def break_assumption(self, *names: str) -> None:
        """Misbehave as each named entry of BROKEN_ASSUMPTIONS says, until mended."""
        with self.lock:
            self.broken |= known(names)

    def mend(self, *names: str) -> None:
        """Keep these assumptions again (all of them when none is named)."""
        with self.lock:
            self.broken = self.broken - known(names) if names else set()

    # -- hooks, faults and the request log --------------------------------------------------

    def on_request(self, fn: Callable[[RequestInfo], None]) -> Callable[[RequestInfo], None]:
        """Call `fn(info)` under the lock before each response is built."""
        with self.lock:
            self._hooks.append(fn)
        return fn

    def clear_hooks(self) -> None:
        with self.lock:
            self._hooks.clear()

    def add_fault(self, fault: Fault) -> Fault:
        with self.lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    def begin_request(self, source: str, method: str, path: str,
                      params: dict[str, str]) -> tuple[RequestInfo, list[Fault]]:
        """Log a request, run the hooks, and pick the faults it will suffer."""
        with self.lock:
            index = self._counters[source] = self._counters.get(source, 0) + 1
            info = RequestInfo(source=source, path=path, params=params, index=index,
                               method=method)
            self.requests.append(info)
            for fn in list(self._hooks):
                try:
                    fn(info)
                except Exception as exc:  # noqa: BLE001 - answered with a 500; the server keeps serving
                    self.errors.append(exc)
                    info.error = f"request hook failed: {exc!r}"
                    return info, []
            faults = select_faults(self._faults, info)
            info.faults = [f.kind for f in faults]
            return info, faults

    def remember_page(self, path: str, page: tuple[int, list[tuple[bytes, bytes]], bytes],
                      keep: bool = True) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
        """Keep the page just served on `path` and return the one before (for repeat_page)."""
        if not keep:
            return self._last_pages.get(path)
        previous = self._last_pages.pop(path, None)
        self._last_pages[path] = page
        self._last_pages_size += len(page[2]) - (len(previous[2]) if previous else 0)
        while len(self._last_pages) > 1 and (len(self._last_pages) > 64
                                             or self._last_pages_size > 32 * 2**20):
            _, (_, _, body) = self._last_pages.popitem(last=False)
            self._last_pages_size -= len(body)
        return previous

    def request_count(self, source: str | None = None, path_contains: str | None = None) -> int:
        with self.lock:
            return sum(1 for r in self.requests
                       if (source is None or r.source == source)
                       and (path_contains is None or path_contains in r.path))

    def reset_requests(self) -> None:
        with self.lock:
            self.requests.clear()
            self._counters = dict.fromkeys(SOURCES, 0)

"""The ASGI application serving Simulators as the Cozmox (/cozmox) and Invent (/invent) APIs.

A plain ASGI callable rather than a framework: it has three routes, and the faults need control a
framework would hide (a Content-Length larger than the body, a connection cut mid-body).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any
from urllib.parse import parse_qsl

import orjson

from simulator.broken import CAPPED_PAGE, RATE_LIMIT
from simulator.data import iso_ms, parse_us
from simulator.faults import Fault, RequestInfo
from simulator.store import NO_BOUND, Record, Simulator

Headers = list[tuple[bytes, bytes]]
Page = tuple[int, Headers, bytes]
JSON = b"application/json; charset=utf-8"
NOT_JSON = b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>"
COZMOX_FILTERS = {f"{field}At{op}": (field, op) for field in ("created", "updated")
                  for op in ("Gt", "Ge", "Lt", "Le")}
INVENT_ENUMS = {"status": {"ALL", "RUNNING", "COMPLETED", "FAILED", "CANCELED"},
                "state": {"ALL", "OPEN", "SNOOZED", "CLOSED"}}

# A dropped connection is deliberate; uvicorn would log it as an application error.
_dropping: ContextVar[bool] = ContextVar("simulator_dropping", default=False)
# The simulator answering the request in hand; each request runs in a task of its own context.
_serving: ContextVar[Simulator | None] = ContextVar("simulator_serving", default=None)


class _DeliberateDropFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _dropping.get()


_drop_filter = _DeliberateDropFilter()
logging.getLogger("uvicorn.error").addFilter(_drop_filter)


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def error_page(status: int, message: str, headers: Headers | None = None) -> Page:
    reason = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
              405: "Method Not Allowed", 429: "Too Many Requests"}.get(status, "Error")
    body = orjson.dumps({"message": message, "error": reason, "statusCode": status})
    return status, headers or [], body


def _int(params: dict[str, str], name: str, default: int, lo: int, hi: int | None) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        number = float(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be a number") from None
    if not number.is_integer():
        raise ApiError(400, f"{name} must be an integer")
    if number < lo or (hi is not None and number > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise ApiError(400, f"{name} must be {bound}")
    return int(number)


def _instant(params: dict[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    us = parse_us(raw)
    if us is None:
        raise ApiError(400, f"{name} must be a valid ISO 8601 date string")
    return us


class SimulatorApp:
    """Routes requests to the Simulator and applies the faults it selects.

    Several simulators (one org each) can share the app: a request goes to one of those holding
    its API key, and only that one logs it, runs its hooks and picks its faults.
    """

    def __init__(self, sim: Simulator, *more_sims: Simulator) -> None:
        self.sims: tuple[Simulator, ...] = (sim, *more_sims)
        _check_distinct(self.sims)
        self.sim = sim
        self.closing = False  # set on shutdown so that stalls end early

    @property
    def serving(self) -> Simulator:
        """The simulator answering the current request (the first one outside a request)."""
        sim = _serving.get()
        return self.sim if sim is None else sim

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        source = path.split("/", 2)[1] if path.startswith("/") else ""
        source = source if source in ("cozmox", "invent") else "other"
        params = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        sim = self.sim if len(self.sims) == 1 else self._route(path, scope)
        _serving.set(sim)
        info, faults = sim.begin_request(source, scope["method"], path, params)
        if info.error is not None:
            return await self._send(send, info, [], error_page(500, info.error))
        kinds = {f.kind: f for f in faults}
        if "stall" in kinds:
            await self._stall(kinds["stall"].seconds)
        with sim.lock:
            try:
                page = self._respond(info, scope, kinds)
            except ApiError as exc:
                page = error_page(exc.status, exc.message)
            except Exception as exc:  # noqa: BLE001 - any failure is answered with a 500, and kept for the test
                sim.errors.append(exc)
                info.error = f"internal error: {exc!r}"
                page = error_page(500, info.error)
        await self._send(send, info, faults, page)

    def _route(self, path: str, scope: dict[str, Any]) -> Simulator:
        """The simulator of the org a request is for, chosen before it is logged: among those
        holding its key, the first one unless the path names another's org or chat. Without a
        matching key it is the first simulator, which answers 401 as a lone one would."""
        auth = dict(scope["headers"]).get(b"authorization", b"")
        keyed = [s for s in self.sims if auth == b"Bearer " + s.api_key.encode()]
        if not keyed:
            return self.sim
        parts = path.strip("/").split("/")
        if len(keyed) > 1 and len(parts) == 4 and parts[0] == "invent":
            if parts[1] == "orgs" and parts[3] == "chats" and parts[2] != "c":
                return next((s for s in keyed if s.invent_org_id == parts[2]), keyed[0])
            if parts[1] == "chats" and parts[3] == "messages":
                for s in keyed:
                    with s.lock:
                        if s.messages_of(parts[2]) is not None:
                            return s
        return keyed[0]

    async def _stall(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not self.closing and (remaining := deadline - loop.time()) > 0:
            await asyncio.sleep(min(remaining, 0.05))

    def _respond(self, info: RequestInfo, scope: dict[str, Any], kinds: dict[str, Fault]) -> Page:
        if "status" in kinds:
            fault = kinds["status"]
            headers: Headers = []
            if fault.retry_after is not None:
                seconds = fault.retry_after
                text = str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))
                headers.append((b"retry-after", text.encode()))
            return error_page(fault.status, "Simulated failure", headers)
        if scope["method"] != "GET":
            return error_page(405, f"Cannot {scope['method']} {info.path}")
        sim = self.serving
        auth = dict(scope["headers"]).get(b"authorization", b"")
        if info.source != "other" and auth != b"Bearer " + sim.api_key.encode():
            return 401, [], b'{"message":"Invalid API key","statusCode":401}'
        delta = kinds["lie_count"].count_delta if "lie_count" in kinds else 0
        bare = "no_results" in kinds
        parts = info.path.strip("/").split("/")
        # Where invent_messages_path is broken, messages live under their org instead.
        moved = "invent_messages_path" in sim.broken
        if parts == ["cozmox", "chat"]:
            page = self._cozmox_chats(info.params, delta, bare)
        elif len(parts) == 4 and parts[:2] == ["invent", "orgs"] and parts[3] == "chats":
            self._check_org(parts[2])
            page = self._invent_chats(info.params, delta, bare)
        elif len(parts) == 4 and parts[:2] == ["invent", "chats"] and parts[3] == "messages" and not moved:
            page = self._invent_messages(parts[2], info.params, delta, bare)
        elif (len(parts) == 6 and parts[:2] == ["invent", "orgs"] and parts[3] == "chats"
              and parts[5] == "messages" and moved):
            self._check_org(parts[2])
            page = self._invent_messages(parts[4], info.params, delta, bare)
        else:
            return error_page(404, f"Cannot GET {info.path}")
        if f"{info.source}_rate_limit" in sim.broken:
            spent = sim.request_count(info.source) % RATE_LIMIT
            page[1].extend([(b"x-ratelimit-limit", str(RATE_LIMIT).encode()),
                            (b"x-ratelimit-remaining", str(RATE_LIMIT - spent).encode())])
        # Only an honest page is worth repeating later. A repeat is the page before in the same
        # listing: the same path and query, one page number back (or the last one served).
        listing = info.path + "?" + "&".join(f"{k}={v}" for k, v in sorted(info.params.items()) if k != "page")
        previous = sim.remember_page(listing, page, keep=not (bare or delta))
        if "repeat_page" in kinds and previous is not None:
            return previous
        return page

    def _check_org(self, org: str) -> None:
        sim = self.serving
        if org not in ("c", sim.invent_org_id) or (org == "c" and "invent_org_shorthand" in sim.broken):
            raise ApiError(404, "Organization not found")

    def _join(self, records: list[Record],
              rewrite: Callable[[dict[str, Any]], None] | None = None) -> list[bytes]:
        """The records' JSON, comma-separated; `rewrite` edits a copy of each first (slow, and
        only for broken assumptions)."""
        shared = self.serving.shared_blobs()
        out: list[bytes] = []
        for i, rec in enumerate(records):
            if i:
                out.append(b",")
            if rewrite is None:
                out.extend(rec.chunks(shared))
            else:
                data = orjson.loads(b"".join(rec.chunks(shared)))
                rewrite(data)
                out.append(orjson.dumps(data))
        return out

    def _cozmox_chats(self, params: dict[str, str], delta: int, bare: bool) -> Page:
        broken = self.serving.broken
        page = _int(params, "page", 1, 1, None)
        limit = _int(params, "limit", 100, 0, 1000)
        if "cozmox_page_size" in broken:
            limit = min(limit, CAPPED_PAGE)
        order = params.get("sortOrder", "DESC")
        if order not in ("ASC", "DESC"):
            raise ApiError(400, "sortOrder must be one of the following values: ASC, DESC")
        if "cozmox_sort_order" in broken:
            order = "DESC"
        bounds = {"created": list(NO_BOUND), "updated": list(NO_BOUND)}
        for name, (field, op) in COZMOX_FILTERS.items():
            us = _instant(params, name)
            if us is None or (field == "updated" and "cozmox_updated_filter" in broken):
                continue
            b = bounds[field]
            if op in ("Gt", "Ge"):
                b[0] = max(b[0], us + 1 if op == "Gt" else us)
            else:
                b[1] = min(b[1], us - 1 if op == "Lt" else us)
        equals = [(k, params[k]) for k in ("assistantId", "sessionId", "workflowId") if k in params]
        (clo, chi), (ulo, uhi) = bounds["created"], bounds["updated"]
        matching = self.serving.ordered("cozmox")
        seconds = "cozmox_times_in_seconds" in broken
        if (clo, chi, ulo, uhi) != NO_BOUND * 2 and seconds:
            matching = [r for r in matching if clo <= _whole_second(r.created_us) <= chi
                        and ulo <= _whole_second(r.updated_us) <= uhi]
        elif (clo, chi, ulo, uhi) != NO_BOUND * 2:
            matching = [r for r in matching
                        if clo <= r.created_us <= chi and ulo <= r.updated_us <= uhi]
        if "cozmox_unsorted" in broken:
            matching = sorted(matching, key=lambda r: r.id)
        for key, value in equals:
            matching = [r for r in matching if r.data.get(key) == value]
        total, start = len(matching), (page - 1) * limit
        if order == "ASC":
            chosen = matching[start: start + limit]
        else:  # walk the ascending list from its end rather than reversing all of it
            chosen = matching[max(total - start - limit, 0): max(total - start, 0)][::-1]
        counted = len(chosen) if "cozmox_metadata" in broken else total + delta
        meta = orjson.dumps({"itemsPerPage": limit, "totalItems": counted, "currentPage": page})
        if bare:
            return 200, [], b'{"metadata":' + meta + b"}"
        joined = self._join(chosen, _in_seconds if seconds else None)
        body = b"".join([b'{"results":[', *joined, b'],"metadata":', meta, b"}"])
        return 200, [], body

    @staticmethod
    def _paging(params: dict[str, str]) -> tuple[int, int]:
        return _int(params, "page", 1, 1, None), _int(params, "take", 100, 1, 100)

    def _listing(self, records: list[Record], page: int, take: int, delta: int,
                 bare: bool, rewrite: Callable[[dict[str, Any]], None] | None = None) -> Page:
        chosen = records[(page - 1) * take: page * take]
        headers = [(b"pagination-count", str(len(records) + delta).encode()),
                   (b"pagination-page", str(page).encode()),
                   (b"pagination-take", str(take).encode())]
        if "invent_pagination_headers" in self.serving.broken:
            headers = []
        if bare:
            return 200, headers, b"{}"
        return 200, headers, b"".join([b"[", *self._join(chosen, rewrite), b"]"])

    def _invent_chats(self, params: dict[str, str], delta: int, bare: bool) -> Page:
        broken = self.serving.broken
        page, take = self._paging(params)
        if "invent_take" in broken:
            take = min(take, CAPPED_PAGE)
        wanted = {}
        for name, allowed in INVENT_ENUMS.items():
            value = params.get(name, "ALL")
            if value not in allowed:
                raise ApiError(400, f"{name} must be one of {sorted(allowed)}")
            if value != "ALL":
                wanted[name] = value
        search = params.get("search", "").lower()
        records = self.serving.ordered("invent")[::-1]  # newest activity first
        if "invent_order" in broken:
            records = sorted(records, key=lambda r: (r.created_us, r.id), reverse=True)
        if "status" in wanted:
            records = [r for r in records if r.data.get("status") == wanted["status"]]
        if "state" in wanted:
            records = [r for r in records if _state(r) == wanted["state"]]
        if search:
            records = [r for r in records if search in str(r.data.get("title", "")).lower()]
        return self._listing(records, page, take, delta, bare,
                             _bare_dates if "invent_bare_dates" in broken else None)

    def _invent_messages(self, chat_id: str, params: dict[str, str], delta: int,
                         bare: bool) -> Page:
        broken = self.serving.broken
        page, take = self._paging(params)
        since = _instant(params, "from_date" if "invent_from_date" in broken else "from")
        messages = self.serving.messages_of(chat_id)
        if messages is None:
            raise ApiError(404, "Chat not found")
        if since is not None:
            messages = [m for m in messages if m.created_us >= since]
        if "invent_messages_order" in broken:
            messages = messages[::-1]
        return self._listing(messages, page, take, delta, bare)

    async def _send(self, send: Any, info: RequestInfo, faults: list[Fault], page: Page) -> None:
        status, headers, body = page
        kinds = {f.kind for f in faults}
        if status == 200 and "invalid_json" in kinds:
            body = NOT_JSON
        if status == 200 and "truncate" in kinds:
            body = body[: len(body) // 2]
        full = len(body)
        if "drop" in kinds:
            body = body[: len(body) // 2]
        info.status = status
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", JSON),
                                (b"content-length", str(full).encode()), *headers]})
        if "drop" in kinds:
            # Half the promised body, then the app returns and the server closes the socket.
            _dropping.set(True)
            await send({"type": "http.response.body", "body": body, "more_body": True})
            return
        await send({"type": "http.response.body", "body": body})


def _check_distinct(sims: tuple[Simulator, ...]) -> None:
    """Simulators behind one key must be told apart by their org (distinct seeds do that)."""
    for i, sim in enumerate(sims):
        if not isinstance(sim, Simulator):
            raise TypeError(f"expected a Simulator, got {sim!r}")
        for other in sims[:i]:
            if sim.api_key == other.api_key and sim.invent_org_id == other.invent_org_id:
                raise ValueError(f"two simulators share API key {sim.api_key!r} and org "
                                 f"{sim.invent_org_id}: give them distinct seeds")


def _whole_second(us: int) -> int:
    return us - us % 1_000_000


def _in_seconds(chat: dict[str, Any]) -> None:
    for name in ("createdAt", "updatedAt"):
        us = parse_us(chat.get(name))
        if us is not None:
            chat[name] = iso_ms(_whole_second(us) // 1000)[:19] + "Z"


def _bare_dates(chat: dict[str, Any]) -> None:
    for name in ("created_at", "updated_at"):
        if isinstance(chat.get(name), str):
            chat[name] = chat[name][:10]


def _state(rec: Record) -> Any:
    state = rec.data.get("state")
    return state.get("state") if isinstance(state, dict) else None

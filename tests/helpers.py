"""Plain helpers the tests share (fixtures live in conftest.py): the simulator's key, the end of
its history, and what the warehouse must hold for the simulator's data."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import duckdb

if TYPE_CHECKING:
    from simulator import Simulator

API_KEY = "sim-key"
# History ends a day ago, so that a lookback never reaches into it by accident.
HISTORY_END = (datetime.now(UTC) - timedelta(days=1)).replace(second=0, microsecond=0)


def query(database: str, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(database, read_only=True)
    try:
        con.execute("set TimeZone = 'UTC'")
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def parse_ts(value: str) -> datetime:
    """An API time; a bare date (as Invent may send) is midnight UTC."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def expected_cozmox(sim: Simulator) -> dict[str, object]:
    """What the warehouse must hold for the simulator's current Cozmox data."""
    chats = sim.cozmox_chats()
    messages = Counter()
    costs = Counter()
    for chat in chats:
        lists = [chat.get("messages") or [], chat.get("output") or []]
        if isinstance(chat.get("input"), list):
            lists.append(chat["input"])
        messages[chat["id"]] = sum(len(x) for x in lists)
        costs[chat["id"]] = len(chat.get("costs") or [])
    return {
        "updated": {c["id"]: parse_ts(c["updatedAt"]) for c in chats},
        "messages": messages,
        "costs": costs,
    }


def assert_same_chats(want: dict[str, datetime], database: str, source: str) -> None:
    """The same chats as the API, each at the API's version."""
    got = dict(query(database, "select chat_id, updated_at from chats where source = ? and deleted_at is null", [source]))
    missing = set(want) - set(got)
    extra = set(got) - set(want)
    assert not missing, f"{len(missing)} chats missing, e.g. {sorted(missing)[:3]}"
    assert not extra, f"{len(extra)} chats that the API does not have, e.g. {sorted(extra)[:3]}"
    stale = [cid for cid, ts in want.items() if got[cid] != ts]
    assert not stale, f"{len(stale)} chats at an old version, e.g. {stale[:3]}"


def assert_warehouse_matches(sim: Simulator, database: str) -> None:
    """Every simulated chat is there once, at its current version, with exactly its children."""
    want = expected_cozmox(sim)
    assert_same_chats(want["updated"], database, "cozmox")
    messages = Counter(dict(query(database, "select chat_id, count(*) from messages where source = 'cozmox' group by 1")))
    assert +messages == +want["messages"]
    costs = Counter(dict(query(database, "select chat_id, count(*) from costs where source = 'cozmox' group by 1")))
    assert +costs == +want["costs"]


def watermark(database: str, source: str = "cozmox") -> datetime | None:
    rows = query(database, "select watermark from sync_state where source = ? and stream = 'chats'", [source])
    return rows[0][0] if rows else None


def expected_invent(sim: Simulator) -> dict[str, object]:
    chats = sim.invent_chats()
    messages = {c["id"]: sim.invent_messages(c["id"]) for c in chats}
    return {
        "updated": {c["id"]: parse_ts(c["updated_at"]) for c in chats},
        "messages": Counter({cid: len(m) for cid, m in messages.items() if m}),
        "usage": Counter({cid: n for cid, m in messages.items() if (n := sum(1 for x in m if x.get("usage")))}),
        "members": Counter({c["id"]: len(c["members"]) for c in chats if c.get("members")}),
    }


def assert_invent_matches(sim: Simulator, database: str) -> None:
    want = expected_invent(sim)
    assert_same_chats(want["updated"], database, "invent")
    for table, key in (("messages", "messages"), ("usage", "usage"), ("chat_members", "members")):
        counts = Counter(dict(query(database, f"select chat_id, count(*) from {table} where source = 'invent' group by 1")))
        assert +counts == +want[key], f"{table} differ"

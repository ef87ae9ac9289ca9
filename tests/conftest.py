"""Shared fixtures: a simulator on loopback, settings pointing at it, and warehouse checks.

Prefect runs on one temporary server for the whole session, under a PREFECT_HOME of its own.
The installed command, which tests run too, keeps chatsync's local Prefect server under a
CHATSYNC_PREFECT_HOME of the session's; the session stops that server as it ends.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from datetime import datetime, timedelta, timezone

_prefect_home = tempfile.mkdtemp(prefix="chatsync-prefect-")
os.environ["PREFECT_HOME"] = _prefect_home
os.environ.setdefault("PREFECT_SERVER_UI_ENABLED", "false")
_chatsync_prefect_home = os.path.join(_prefect_home, "chatsync")
os.environ["CHATSYNC_PREFECT_HOME"] = _chatsync_prefect_home
# A session killed before its end leaves that server for two minutes, not half an hour.
os.environ["CHATSYNC_PREFECT_SERVER_IDLE"] = "2m"
# Prefect binds its console handler to the stdout of the moment, which pytest swaps per test;
# tests read logs through pytest's own capture instead.
os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "CRITICAL"
for _name in ("COZMOX_API_KEY", "INVENT_API_KEY", "CHATSYNC_DATABASE", "COZMOX_BASE_URL", "INVENT_BASE_URL"):
    os.environ.pop(_name, None)

from flows.prefect_env import configure  # noqa: E402

configure()

import duckdb  # noqa: E402
import pytest  # noqa: E402

from flows.settings import Settings  # noqa: E402
from simulator import Simulator, SimulatorServer  # noqa: E402

API_KEY = "sim-key"
# History ends a day ago, so that a lookback never reaches into it by accident.
HISTORY_END = (datetime.now(timezone.utc) - timedelta(days=1)).replace(second=0, microsecond=0)


@pytest.fixture(autouse=True, scope="session")
def _runtime_tweaks():
    """The tweaks the command applies, so that tests run the pipeline as users do."""
    from flows import runtime

    runtime.apply()


@pytest.fixture(autouse=True, scope="session")
def _no_local_prefect_server_left():
    yield
    from pathlib import Path

    from flows import temporary_server

    temporary_server.stop_server(Path(_chatsync_prefect_home))


@pytest.fixture(autouse=True, scope="session")
def _quiet_prefect_shutdown():
    """Prefect says goodbye when the session ends, after pytest has closed the captured stdout."""
    yield
    import logging

    logging.getLogger("prefect").setLevel(logging.WARNING)


@pytest.fixture(autouse=True)
def _no_dotenv(tmp_path, monkeypatch):
    """Tests run where no .env can leak settings in, and leave the environment as they found it
    (the command writes its options into the environment for the flows it starts)."""
    monkeypatch.chdir(tmp_path)
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def sim_options() -> dict:
    return {}


@pytest.fixture
def sim(sim_options) -> Simulator:
    options = dict(seed=11, cozmox_chats=120, invent_chats=0, api_key=API_KEY, history_days=20,
                   history_end=HISTORY_END, lag=timedelta(seconds=1))
    options.update(sim_options)
    return Simulator(**options)


@pytest.fixture
def server(sim):
    with SimulatorServer(sim) as running:
        yield running


@pytest.fixture
def settings(server, tmp_path) -> Settings:
    return Settings(
        database=str(tmp_path / "warehouse.duckdb"),
        cozmox_base_url=server.cozmox_url,
        cozmox_api_key=API_KEY,
        invent_base_url=server.invent_url,
        page_size=20,
        safety_margin_seconds=0,
        lookback_seconds=600,
        timeout_seconds=5,
        max_attempts=4,
        retry_backoff_seconds=0.01,
    )


@pytest.fixture
def cli_env(settings, monkeypatch):
    """The same settings, as the environment the `chatsync` command reads."""
    values = {
        "CHATSYNC_DATABASE": settings.database,
        "COZMOX_BASE_URL": settings.cozmox_base_url,
        "COZMOX_API_KEY": API_KEY,
        "INVENT_BASE_URL": settings.invent_base_url,
        "CHATSYNC_PAGE_SIZE": str(settings.page_size),
        "CHATSYNC_SAFETY_MARGIN_SECONDS": "0",
        "CHATSYNC_MAX_ATTEMPTS": str(settings.max_attempts),
        "CHATSYNC_RETRY_BACKOFF_SECONDS": "0.01",
        "CHATSYNC_TIMEOUT_SECONDS": "5",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


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
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


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


@pytest.fixture
def invent_settings(settings) -> Settings:
    """Invent alone, with no request-rate limit: the simulator has none."""
    return settings.model_copy(update={"cozmox_api_key": None, "invent_api_key": API_KEY,
                                       "invent_requests_per_minute": 0})


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

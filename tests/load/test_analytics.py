"""The analytics views, on a small dataset whose answers are worked out by hand; migrations;
`query` and `export`; the schema reference."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path

import duckdb
import pytest

from flows.cli import main
from load.schema_doc import render
from load.warehouse import AccountKey, Warehouse
from transform import cozmox, invent

T0 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
MS = int(T0.timestamp() * 1000)

COZMOX = [
    {  # 3 transcript messages, 2 of them the user's, 60 s first to last; $0.50 of gpt-4o and $0.10 of voice.
        "id": "A", "orgId": "org", "assistantId": "asst-1", "createdAt": "2026-01-01T10:00:00Z",
        "updatedAt": "2026-01-01T11:00:00Z", "input": "hello",
        "messages": [{"role": "user", "message": "hi", "time": MS},
                     {"role": "assistant", "message": "hello", "time": MS + 30_000},
                     {"role": "user", "message": "bye", "time": MS + 60_000}],
        "output": [{"role": "assistant", "message": "out", "time": MS + 61_000}],
        "costs": [{"type": "model", "model": {"provider": "openai", "model": "gpt-4o"},
                   "promptTokens": 100, "completionTokens": 50, "cost": 0.5},
                  {"type": "voice", "characters": 300, "cost": 0.1}],
        "cost": 0.6,
    },
    {  # $1.00 of claude, on the next day.
        "id": "B", "orgId": "org", "assistantId": "asst-2", "createdAt": "2026-01-02T23:30:00Z",
        "updatedAt": "2026-01-02T23:59:00Z",
        "messages": [{"role": "user", "message": "q", "time": MS + 86_400_000},
                     {"role": "assistant", "message": "a", "time": MS + 86_410_000}],
        "costs": [{"type": "model", "model": "claude-3-5-sonnet", "promptTokens": 200,
                   "completionTokens": 100, "cost": 1.0}],
        "cost": 1.0,
    },
]

INVENT_CHAT = {
    "id": "C", "org_id": "org", "title": "Order", "status": "COMPLETED", "model": "gpt-4o-mini",
    "created_at": "2026-01-01", "updated_at": "2026-01-01T12:00:20Z",
    "state": {"state": "OPEN", "assistant_id": "asst-3"},
    "members": [{"id": "m1", "role": "MEMBER",
                 "contact_channel": {"id": "cc", "channel_type": "whatsapp_bot", "contact": {"id": "k", "name": "Kim"}}}],
}
INVENT_MESSAGES = [
    {"id": "c1", "role": "user", "created_at": "2026-01-01T12:00:00Z",
     "messages": [{"role": "user", "parts": [{"type": "text", "text": "where is it"}]}]},
    {"id": "c2", "role": "assistant", "model": "gpt-4o-mini", "created_at": "2026-01-01T12:00:20Z",
     "messages": [{"role": "assistant", "parts": [{"type": "text", "text": "on its way"}]}],
     "usage": {"input_tokens": 1000, "output_tokens": 200, "total_tokens": 1200, "reasoning_tokens": 50,
               "cached_input_tokens": 400}},
]


@pytest.fixture
def warehouse(tmp_path):
    with Warehouse(str(tmp_path / "known.duckdb")) as wh:
        account = AccountKey("cozmox", "org", "cozmox")
        run = wh.start_run(account, "incremental")
        wh.load(cozmox.flatten(COZMOX, {}, T0), account=account, run_id=run, watermark=T0)
        wh.finish_run(run, "success", {})
        wh.load(invent.flatten([INVENT_CHAT], {"C": INVENT_MESSAGES}, T0),
                account=AccountKey("invent", "org", "invent"), run_id="r2")
        yield wh


def rows(wh: Warehouse, sql: str) -> list[tuple]:
    return wh.con.execute(sql).fetchall()


def test_chat_summary_length_duration_and_cost(warehouse):
    got = rows(warehouse, "select chat_id, channel, message_count, turn_count, duration_seconds, cost,"
                          " cost_per_message, total_tokens from chat_summary order by chat_id")
    assert got == [
        ("A", None, 3, 2, 60.0, 0.6, pytest.approx(0.2), 150),
        ("B", None, 2, 1, 10.0, 1.0, 0.5, 300),
        ("C", "whatsapp_bot", 2, 1, 20.0, None, None, 1200),
    ]


def test_daily_spend_per_source_model_and_assistant(warehouse):
    got = rows(warehouse, "select day, source, model, assistant_id, chats, input_tokens, output_tokens,"
                          " cached_input_tokens, cost from daily_spend order by day, source, model nulls last")
    assert got == [
        (date(2026, 1, 1), "cozmox", "gpt-4o", "asst-1", 1, 100, 50, None, 0.5),
        (date(2026, 1, 1), "cozmox", None, "asst-1", 1, None, None, None, 0.1),
        (date(2026, 1, 1), "invent", "gpt-4o-mini", "asst-3", 1, 1000, 200, 400, None),
        (date(2026, 1, 2), "cozmox", "claude-3-5-sonnet", "asst-2", 1, 200, 100, None, 1.0),
    ]


def test_days_are_utc_whatever_the_session_time_zone(warehouse):
    warehouse.con.execute("set TimeZone = 'Asia/Tokyo'")  # B at 23:30 UTC is already Jan 3 there
    assert rows(warehouse, "select created_day from chat_summary where chat_id = 'B'") == [(date(2026, 1, 2),)]


def test_daily_chats_by_status_and_channel(warehouse):
    got = rows(warehouse, "select day, source, status, channel, chats, messages from daily_chats order by all")
    assert got == [
        (date(2026, 1, 1), "cozmox", None, None, 1, 3),
        (date(2026, 1, 1), "invent", "COMPLETED", "whatsapp_bot", 1, 2),
        (date(2026, 1, 2), "cozmox", None, None, 1, 2),
    ]


def test_token_shares_and_rankings(warehouse):
    shares = rows(warehouse, "select cached_input_share, reasoning_share from token_shares where source = 'invent'")
    assert shares == [(0.4, 0.25)]
    assistants = rows(warehouse, "select spend_rank, assistant_id, cost from assistant_spend order by spend_rank")
    assert assistants[:2] == [(1, "asst-2", 1.0), (2, "asst-1", pytest.approx(0.6))]
    models = rows(warehouse, "select spend_rank, model from model_spend order by spend_rank")
    assert models == [(1, "claude-3-5-sonnet"), (2, "gpt-4o"), (3, "gpt-4o-mini")]


def test_freshness_per_account(warehouse):
    got = rows(warehouse, "select source, org_id, account, watermark, last_run_status, last_success_at is not null,"
                          " watermark_age > interval 1 day from freshness")
    assert got == [("cozmox", "org", "cozmox", T0, "success", True, True)]


def test_deleted_chats_are_left_out(warehouse):
    warehouse.con.execute("update chats set deleted_at = now() where chat_id = 'B'")
    assert rows(warehouse, "select count(*) from chat_summary") == [(2,)]
    assert rows(warehouse, "select count(*) from spend_items where chat_id = 'B'") == [(0,)]


def test_a_database_of_the_first_schema_version_is_migrated_in_place(tmp_path):
    path = str(tmp_path / "old.duckdb")
    con = duckdb.connect(path)
    con.execute("create table schema_migrations (version integer primary key, name varchar not null,"
                " applied_at timestamptz not null)")
    con.execute(resources.files("sql").joinpath("001_tables.sql").read_text())
    con.execute("insert into schema_migrations values (1, '001_tables.sql', now())")
    con.execute("insert into chats (source, chat_id, updated_at, loaded_at, cost) values"
                " ('cozmox', 'old', '2025-01-01', now(), 2.5)")
    con.close()

    with Warehouse(path) as wh:
        versions = [v for (v,) in rows(wh, "select version from schema_migrations order by 1")]
        assert versions == list(range(1, versions[-1] + 1)) and versions[-1] >= 5
        assert rows(wh, "select chat_id, cost from chat_summary") == [("old", 2.5)]
    with Warehouse(path) as wh:  # opening again applies nothing twice
        assert rows(wh, "select count(*) from schema_migrations")[0][0] == versions[-1]


def test_query_round_trips_as_csv_and_json(warehouse, capsys):
    database = warehouse.database
    warehouse.close()
    sql = "select chat_id, message_count, cost from chat_summary order by chat_id"

    assert main(["query", sql, "--format", "csv", "--database", database]) == 0
    parsed = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["chat_id"], int(r["message_count"]), r["cost"]) for r in parsed] == [
        ("A", 3, "0.6"), ("B", 2, "1.0"), ("C", 2, "")]

    assert main(["query", sql, "--format", "json", "--database", database]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"chat_id": "A", "message_count": 3, "cost": 0.6},
        {"chat_id": "B", "message_count": 2, "cost": 1.0},
        {"chat_id": "C", "message_count": 2, "cost": None},
    ]
    assert main(["query", "select * from no_such_table", "--database", database]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_export_writes_every_table_as_parquet(warehouse, tmp_path, capsys):
    database = warehouse.database
    expected = {t: rows(warehouse, f"select * from {t} order by all") for t in ("chats", "messages", "usage", "costs")}
    tables = {t for (t,) in rows(warehouse, "select table_name from duckdb_tables() where not temporary")}
    warehouse.close()

    assert main(["export", str(tmp_path / "out"), "--database", database]) == 0

    assert {p.stem for p in (tmp_path / "out").glob("*.parquet")} == tables
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    for table, want in expected.items():
        got = con.execute(f"select * from read_parquet('{tmp_path / 'out' / table}.parquet') order by all").fetchall()
        assert got == want, table


def test_the_schema_reference_is_generated_from_the_database():
    with Warehouse(":memory:") as wh:
        generated = render(wh)
        undocumented = rows(wh, "select table_name, column_name from duckdb_columns()"
                                " where comment is null and database_name = current_database()")
    assert not undocumented, f"columns with no comment: {undocumented[:5]}"
    committed = (Path(__file__).resolve().parents[2] / "docs" / "schema.md").read_text()
    assert committed == generated, "docs/schema.md is stale: python -m load.schema_doc > docs/schema.md"

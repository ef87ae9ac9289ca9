"""The views of sql/views/: an edited file reaches a warehouse made before the edit, and every
view can be read per organisation (an agency bills each of its clients)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest

from load import views
from load.warehouse import Warehouse

T0 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


def rows(wh: Warehouse, sql: str) -> list[tuple]:
    return wh.con.execute(sql).fetchall()


def applied(wh: Warehouse) -> dict[str, tuple[str, datetime]]:
    return {name: (sha, at) for name, sha, at in rows(wh, "select name, sha256, applied_at from schema_views")}


@pytest.fixture
def shipped_copy(tmp_path, monkeypatch) -> Path:
    """A copy of sql/views/ that the warehouse reads instead, to edit as a later release would."""
    copy = tmp_path / "views"
    copy.mkdir()
    for f in views.VIEWS_DIR.iterdir():
        if f.name.endswith(".sql"):
            (copy / f.name).write_text(f.read_text())
    monkeypatch.setattr(views, "VIEWS_DIR", copy)
    return copy


def test_an_edited_view_reaches_a_warehouse_made_before_the_edit(tmp_path, shipped_copy):
    path = str(tmp_path / "old.duckdb")
    with Warehouse(path) as wh:
        before = applied(wh)
    assert set(before) == set(views.VIEWS)

    spend_items = shipped_copy / "spend_items.sql"
    spend_items.write_text(spend_items.read_text().replace(
        "select * from final;", "select *, 'edited' as edition from final;"))

    with Warehouse(path) as wh:
        assert "edition" in [d[0] for d in wh.con.execute("select * from spend_items").description]
        assert "edited" in rows(wh, "select sql from duckdb_views() where view_name = 'spend_items'")[0][0]
        after = applied(wh)
        # the view before it is left alone; it and every view after it (which may read it) are made again
        assert after["chat_summary"] == before["chat_summary"]
        later = views.VIEWS[views.VIEWS.index("spend_items"):]
        assert all(after[name][1] > before[name][1] for name in later)
        assert after["spend_items"][0] != before["spend_items"][0]
    with Warehouse(path) as wh:  # opening again recreates nothing
        assert applied(wh) == after


def test_a_view_no_longer_shipped_is_dropped(tmp_path, shipped_copy, monkeypatch):
    path = str(tmp_path / "old.duckdb")
    Warehouse(path).close()
    (shipped_copy / "token_shares.sql").unlink()
    monkeypatch.setattr(views, "VIEWS", tuple(v for v in views.VIEWS if v != "token_shares"))
    with Warehouse(path) as wh:
        assert rows(wh, "select count(*) from duckdb_views() where view_name = 'token_shares'") == [(0,)]
        assert "token_shares" not in applied(wh)


def test_a_view_that_fails_leaves_every_view_as_it_was(tmp_path, shipped_copy):
    path = str(tmp_path / "old.duckdb")
    with Warehouse(path) as wh:
        before = applied(wh)
    release = {f.name: f.read_text() for f in shipped_copy.iterdir()}
    chat_summary = shipped_copy / "chat_summary.sql"
    chat_summary.write_text(chat_summary.read_text().replace(
        "select * from final;", "select *, 'edited' as edition from final;"))
    (shipped_copy / "freshness.sql").write_text("create or replace view freshness as select * from no_such_table;")
    with pytest.raises(duckdb.CatalogException, match="no_such_table"):
        Warehouse(path)
    for name, text in release.items():
        (shipped_copy / name).write_text(text)
    with Warehouse(path) as wh:  # the failed open changed nothing: there is nothing to redo
        assert applied(wh) == before
        assert "edition" not in [d[0] for d in wh.con.execute("select * from chat_summary").description]


def test_a_view_file_missing_from_the_order_is_refused(shipped_copy):
    (shipped_copy / "extra.sql").write_text("create or replace view extra as select 1 as x;")
    with pytest.raises(RuntimeError, match="extra"):
        Warehouse(":memory:")


@pytest.fixture
def two_orgs():
    """Two organisations on both sources: org-a spends on gpt-4o, org-b on gpt-4o and claude."""
    with Warehouse(":memory:") as wh:
        chats = [
            ("cozmox", "a1", "org-a", "asst-a", T0, 1.0),
            ("cozmox", "b1", "org-b", "asst-b", T0, 2.0),
            ("cozmox", "b2", "org-b", "asst-b", T0, 0.5),
            ("invent", "a2", "org-a", "asst-c", T0, None),
            ("invent", "b3", "org-b", "asst-d", T0, None),
        ]
        for source, chat_id, org, assistant, created, cost in chats:
            wh.con.execute("insert into chats (source, chat_id, org_id, assistant_id, created_at, updated_at,"
                           " loaded_at, cost) values (?, ?, ?, ?, ?, ?, now(), ?)",
                           [source, chat_id, org, assistant, created, created, cost])
        costs = [("a1", "gpt-4o", 100, 10, 1.0), ("b1", "gpt-4o", 200, 20, 2.0), ("b2", "claude", 50, 5, 0.5)]
        for seq, (chat_id, model, prompt, completion, cost) in enumerate(costs):
            wh.con.execute("insert into costs (source, chat_id, seq, type, model, prompt_tokens, completion_tokens,"
                           " cost) values ('cozmox', ?, ?, 'model', ?, ?, ?, ?)",
                           [chat_id, seq, model, prompt, completion, cost])
        usage = [("a2", 1000, 100, 400), ("b3", 3000, 300, 0)]
        for chat_id, input_tokens, output_tokens, cached in usage:
            wh.con.execute("insert into usage (source, message_id, chat_id, created_at, model, input_tokens,"
                           " output_tokens, cached_input_tokens) values ('invent', ?, ?, ?, 'gpt-4o-mini', ?, ?, ?)",
                           [f"m-{chat_id}", chat_id, T0, input_tokens, output_tokens, cached])
        yield wh


def test_spend_is_grouped_by_organisation(two_orgs):
    assert rows(two_orgs, "select org_id, source, model, chats, total_tokens, cost from daily_spend order by all") == [
        ("org-a", "cozmox", "gpt-4o", 1, 110, 1.0),
        ("org-a", "invent", "gpt-4o-mini", 1, 1100, None),
        ("org-b", "cozmox", "claude", 1, 55, 0.5),
        ("org-b", "cozmox", "gpt-4o", 1, 220, 2.0),
        ("org-b", "invent", "gpt-4o-mini", 1, 3300, None),
    ]
    assert rows(two_orgs, "select org_id, sum(cost), sum(total_tokens) from spend_items group by 1 order by 1") == [
        ("org-a", 1.0, 1210), ("org-b", 2.5, 3575)]
    # ranks run over the whole table; one organisation's rows keep their order among themselves
    assert rows(two_orgs, "select spend_rank, org_id, model, cost from model_spend order by spend_rank") == [
        (1, "org-b", "gpt-4o", 2.0), (2, "org-a", "gpt-4o", 1.0), (3, "org-b", "claude", 0.5),
        (4, "org-b", "gpt-4o-mini", None), (5, "org-a", "gpt-4o-mini", None)]
    assert rows(two_orgs, "select spend_rank, org_id, assistant_id, chats, cost from assistant_spend"
                          " where org_id = 'org-b' order by spend_rank") == [
        (1, "org-b", "asst-b", 2, 2.5), (3, "org-b", "asst-d", 1, None)]
    assert rows(two_orgs, "select org_id, cached_input_share from token_shares where source = 'invent'"
                          " order by org_id") == [("org-a", 0.4), ("org-b", 0.0)]
    assert rows(two_orgs, "select day, org_id, source, chats from daily_chats order by all") == [
        (date(2026, 1, 1), "org-a", "cozmox", 1), (date(2026, 1, 1), "org-a", "invent", 1),
        (date(2026, 1, 1), "org-b", "cozmox", 2), (date(2026, 1, 1), "org-b", "invent", 1)]


def test_freshness_has_one_row_per_account():
    with Warehouse(":memory:") as wh:
        for source, org, account, watermark in [("cozmox", "org-a", "agency-a", T0),
                                                ("cozmox", "org-b", "agency-b", T0.replace(hour=12)),
                                                ("invent", "org-a", "agency-a", T0)]:
            wh.con.execute("insert into sync_state (source, org_id, stream, watermark, updated_at, account)"
                           " values (?, ?, 'chats', ?, now(), ?)", [source, org, watermark, account])
        runs = [
            ("r1", "cozmox", "org-a", "incremental", 1, "success"),
            ("r2", "cozmox", "org-a", "incremental", 2, "failed"),
            ("r3", "cozmox", "org-b", "incremental", 1, "success"),
            ("r4", "cozmox", "org-b", "backfill", 3, "failed"),     # backfills say nothing of freshness
            ("r5", "cozmox", None, "incremental", 4, "failed"),     # failed before the API named its org
        ]
        for run_id, source, org, mode, hour, status in runs:
            started = T0.replace(hour=hour)
            wh.con.execute("insert into sync_runs (run_id, source, org_id, account, mode, started_at, finished_at,"
                           " status) values (?, ?, ?, 'x', ?, ?, ?, ?)",
                           [run_id, source, org, mode, started, started.replace(minute=5), status])
        got = rows(wh, "select source, org_id, account, watermark, last_success_at, last_run_at, last_run_status"
                       " from freshness order by source, org_id")
    assert got == [
        ("cozmox", "org-a", "agency-a", T0, T0.replace(hour=1, minute=5), T0.replace(hour=2), "failed"),
        ("cozmox", "org-b", "agency-b", T0.replace(hour=12), T0.replace(hour=1, minute=5), T0.replace(hour=1), "success"),
        ("invent", "org-a", "agency-a", T0, None, None, None),
    ]

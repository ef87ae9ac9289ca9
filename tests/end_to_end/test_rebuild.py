"""`chatsync rebuild` derives every table again from the raw records, with no request to an API."""

from __future__ import annotations

import duckdb
import pytest
from helpers import API_KEY, assert_invent_matches, assert_warehouse_matches, query

from flows.cli import main
from flows.pipeline import run_reconcile, run_sync


@pytest.fixture
def sim_options() -> dict:
    return {"cozmox_chats": 70, "invent_chats": 20}


def test_rebuild_restores_every_derived_row_from_raw_alone(sim, settings, capsys):
    both = settings.model_copy(update={"invent_api_key": API_KEY, "invent_requests_per_minute": 0})
    run_sync(both)
    gone = sim.chat_ids("cozmox")[3]
    sim.delete("cozmox", gone)
    run_reconcile(both)
    state = query(both.database, "select * from sync_state order by all")
    derived = ("messages", "usage", "costs", "chat_members")
    before = {t: query(both.database, f"select * from {t} order by all") for t in derived}
    # What an older release left: columns it did not fill, rows it did not make.
    with duckdb.connect(both.database) as con:
        con.execute("update messages set tool_calls = null, content = null")
        con.execute("delete from usage where source = 'invent'")
        con.execute("delete from costs")
        con.execute("update chats set squad_id = null, title = 'stale'")
    requests = sim.request_count()

    code = main(["rebuild", "--database", both.database])

    out = capsys.readouterr().out
    assert code == 0 and "rebuild" in out and "success" in out
    assert sim.request_count() == requests  # not one request
    for table in derived:
        assert query(both.database, f"select * from {table} order by all") == before[table], table
    assert query(both.database, "select count(*) from chats where title = 'stale'") == [(0,)]
    assert query(both.database, "select * from sync_state order by all") == state  # watermarks stay
    assert query(both.database, "select chat_id from chats where deleted_at is not null") == [(gone,)]
    assert_invent_matches(sim, both.database)
    runs = query(both.database, "select account, status, chats_fetched from sync_runs where mode = 'rebuild' order by 1")
    assert runs == [("cozmox", "success", 70), ("invent", "success", 20)]


def test_rebuild_of_one_account_leaves_the_others_alone(sim, settings, capsys):
    run_sync(settings)
    with duckdb.connect(settings.database) as con:
        con.execute("delete from costs")
    assert main(["rebuild", "--database", settings.database, "--account", "nobody"]) == 1
    assert "nothing to rebuild" in capsys.readouterr().err
    assert main(["rebuild", "--database", settings.database, "--source", "cozmox"]) == 0
    assert_warehouse_matches(sim, settings.database)
    assert query(settings.database, "select count(*) > 0 from costs") == [(True,)]

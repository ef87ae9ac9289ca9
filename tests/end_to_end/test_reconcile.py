"""Deletes: reconcile marks exactly the chats gone upstream, never deletes rows, and clears the
mark when a chat comes back."""

from __future__ import annotations

import pytest
from helpers import API_KEY, query

from flows.pipeline import run_reconcile, run_sync
from simulator import Fault

pytestmark = pytest.mark.parametrize("sim_options", [{"cozmox_chats": 50, "invent_chats": 40}])


@pytest.fixture
def both(settings):
    return settings.model_copy(update={"invent_api_key": API_KEY, "invent_requests_per_minute": 0})


def deleted(database):
    return {(s, c) for s, c in query(database, "select source, chat_id from chats where deleted_at is not null")}


def test_exactly_the_deleted_chats_are_marked_and_rows_stay(sim, both):
    run_sync(both)
    gone = {("cozmox", c) for c in sim.chat_ids("cozmox")[3:6]} | {("invent", sim.chat_ids("invent")[7])}
    for source, chat_id in gone:
        sim.delete(source, chat_id)
    sim.reset_requests()

    summaries = run_reconcile(both)

    assert all(s.status == "success" for s in summaries)
    assert deleted(both.database) == gone
    assert query(both.database, "select count(*) from chats") == [(90,)]
    assert query(both.database, "select count(*) from chat_summary") == [(86,)]
    assert sim.request_count("invent", path_contains="/messages") == 0, "ids only: no messages"


def test_a_hundred_reconciles_with_no_deletes_mark_nothing(sim, both):
    run_sync(both)
    for _ in range(100):
        run_reconcile(both)
    assert deleted(both.database) == set()
    assert query(both.database, "select count(*) from sync_runs where mode = 'reconcile' and status = 'success'") == [(200,)]


def test_chats_updated_while_reconcile_walks_are_not_marked(sim, both):
    run_sync(both)
    order = sorted(sim.invent_chats(), key=lambda c: c["updated_at"])
    late = [c["id"] for c in order[:5]]  # oldest: at the bottom of the newest-first list

    def bump(request):
        # Once page 1 has been read, the oldest chats get new activity and jump above the walk.
        if request.path.endswith("/chats") and request.params.get("page") == "2" and not bumped:
            bumped.append(True)
            for chat_id in late:
                sim.touch("invent", chat_id)

    bumped: list[bool] = []

    sim.on_request(bump)
    run_reconcile(both, "invent")
    assert bumped and deleted(both.database) == set()


def test_a_chat_that_comes_back_is_unmarked(sim, both):
    run_sync(both)
    chat_id = sim.chat_ids("cozmox")[0]
    from load.warehouse import Warehouse

    with Warehouse(both.database) as wh:
        wh.con.execute("update chats set deleted_at = now() where chat_id = ?", [chat_id])
    run_reconcile(both, "cozmox")
    assert deleted(both.database) == set()


def test_a_failing_or_empty_listing_marks_nothing(sim, both):
    run_sync(both)
    sim.add_fault(Fault(kind="status", status=503, times=-1, source="cozmox", after=1))
    (failed,) = run_reconcile(both, "cozmox")
    assert failed.status == "failed" and deleted(both.database) == set()

    sim.clear_faults()
    for chat_id in sim.chat_ids("invent"):
        sim.delete("invent", chat_id)
    (empty,) = run_reconcile(both, "invent")
    assert empty.status == "failed" and "refusing" in empty.error
    assert deleted(both.database) == set()


def test_more_than_a_tenth_gone_at_once_marks_nothing_unless_forced(sim, both):
    run_sync(both)
    gone = sim.chat_ids("cozmox")[:6]  # 6 of 50: past the 10% one run marks
    for chat_id in gone:
        sim.delete("cozmox", chat_id)

    (refused,) = run_reconcile(both, "cozmox")
    assert refused.status == "failed" and "6 of 50 chats are no longer listed" in refused.error
    assert "--force" in refused.error and deleted(both.database) == set()

    (forced,) = run_reconcile(both, "cozmox", force=True)
    assert forced.status == "success" and deleted(both.database) == {("cozmox", c) for c in gone}


def test_a_listing_short_of_the_apis_own_count_marks_nothing(sim, both):
    run_sync(both)
    sim.delete("invent", sim.chat_ids("invent")[3])
    sim.add_fault(Fault(kind="lie_count", count_delta=4, times=-1, source="invent", path_contains="/chats"))

    (refused,) = run_reconcile(both, "invent")

    assert refused.status == "failed" and "the listing returned 39 chats where the API counts 43" in refused.error
    assert deleted(both.database) == set()
    assert query(both.database, "select api_seen, api_total from sync_runs where mode = 'reconcile'") == [(39, 43)]

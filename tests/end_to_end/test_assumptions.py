"""Where an API breaks an assumption chatsync makes, nothing is lost and the run says so.

Each test breaks one assumption in the simulator, runs the real pipeline over loopback, reads the
warehouse, and finds the warning in the run's `sync_runs` row.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from helpers import API_KEY, assert_invent_matches, assert_warehouse_matches, parse_ts, query

from flows.pipeline import run_sync
from simulator import Fault

pytestmark = pytest.mark.parametrize("sim_options", [{"cozmox_chats": 60, "invent_chats": 45}])


@pytest.fixture
def invent(settings):
    return settings.model_copy(update={"cozmox_api_key": None, "invent_api_key": API_KEY,
                                       "invent_requests_per_minute": 0})


def last_warnings(database: str) -> str:
    return query(database, "select coalesce(warnings, '') from sync_runs order by started_at desc limit 1")[0][0]


def test_invent_times_without_a_time_of_day_still_catch_changes_later_that_day(sim, invent):
    today = datetime.now(UTC).date().isoformat()
    for chat_id in sim.chat_ids("invent"):
        sim.touch("invent", chat_id, add_messages=0)
        sim.set_timestamp("invent", chat_id, today)
    (first,) = run_sync(invent)
    assert first.status == "success"
    # Later the same day: new messages, and updated_at says the same day as before. The chat
    # sits below the first page, all of which is "before" the run's start by the clock.
    order = sorted(sim.invent_chats(), key=lambda c: c["id"])
    late = order[0]["id"]
    sim.touch("invent", late, add_messages=3)
    sim.set_timestamp("invent", late, today)

    (second,) = run_sync(invent)

    assert second.status == "success", second.error
    assert_invent_matches(sim, invent.database)
    assert "no time of day" in last_warnings(invent.database)


def test_a_messages_404_for_a_listed_chat_holds_it_back_instead_of_losing_it(sim, invent):
    run_sync(invent)
    chat_id = sim.chat_ids("invent")[5]
    sim.touch("invent", chat_id, add_messages=2)
    sim.add_fault(Fault(kind="status", status=404, times=-1, source="invent", path_contains=f"/chats/{chat_id}/"))

    (held,) = run_sync(invent)

    assert held.status == "success"
    assert "answered 404" in last_warnings(invent.database)
    # not loaded without its messages, nor marked deleted: the next run reads it again
    row = query(invent.database, "select updated_at, deleted_at from chats where chat_id = ?", [chat_id])
    assert row[0][0] < parse_ts(sim.chat("invent", chat_id)["updated_at"]) and row[0][1] is None
    sim.clear_faults()
    (healed,) = run_sync(invent)
    assert healed.status == "success"
    assert_invent_matches(sim, invent.database)


def test_a_403_on_one_chats_messages_holds_that_chat_back_and_the_run_goes_on(sim, invent):
    run_sync(invent)
    chat_id = sim.chat_ids("invent")[7]
    sim.touch("invent", chat_id, add_messages=2)
    for other in sim.chat_ids("invent")[10:13]:
        sim.touch("invent", other)
    sim.add_fault(Fault(kind="status", status=403, times=-1, source="invent", path_contains=f"/chats/{chat_id}/"))

    (partial,) = run_sync(invent)

    assert partial.status == "partial" and chat_id in partial.error
    assert partial.chats_upserted == 3  # the others loaded
    sim.clear_faults()
    run_sync(invent)
    assert_invent_matches(sim, invent.database)


def test_most_message_requests_failing_fails_the_run_naming_the_endpoint(sim, invent):
    sim.add_fault(Fault(kind="status", status=403, times=-1, source="invent", path_contains="/messages"))
    (failed,) = run_sync(invent)
    assert failed.status == "failed" and "/chats/{chat_id}/messages" in failed.error
    assert query(invent.database, "select count(*) from sync_state") == [(0,)]


def test_a_cozmox_api_that_pages_smaller_than_asked_is_read_on(sim, settings, monkeypatch):
    from simulator import app

    real = app.SimulatorApp._cozmox_chats

    def capped(self, params, delta, bare):  # an API that serves at most 7 and says nothing of it
        return real(self, {**params, "limit": str(min(7, int(params.get("limit", 100))))}, delta, bare)

    monkeypatch.setattr(app.SimulatorApp, "_cozmox_chats", capped)
    (summary,) = run_sync(settings.model_copy(update={"page_size": 20}))

    assert summary.status == "success", summary.error
    assert_warehouse_matches(sim, settings.database)
    assert "reading on with pages of 7" in last_warnings(settings.database)
    assert query(settings.database, "select api_total, api_seen from sync_runs") == [(60, 60)]


def test_an_invent_list_that_pages_smaller_than_asked_is_read_on(sim, invent, monkeypatch):
    from simulator import app

    real = app.SimulatorApp._paging

    def capped(params):
        page, take = real(params)
        return page, min(take, 7)

    monkeypatch.setattr(app.SimulatorApp, "_paging", staticmethod(capped))
    (summary,) = run_sync(invent.model_copy(update={"page_size": 20}))

    assert summary.status == "success", summary.error
    assert_invent_matches(sim, invent.database)
    assert "reading on with pages of 7" in last_warnings(invent.database)
    assert query(invent.database, "select api_total, api_seen from sync_runs") == [(45, 45)]


def test_message_times_far_outside_their_chat_are_counted_and_said_once(sim, settings):
    run_sync(settings)
    chat_id = sim.chat_ids("cozmox")[4]
    created_s = parse_ts(sim.chat("cozmox", chat_id)["createdAt"]).timestamp()
    # seconds where milliseconds belong: 1970 by the API's own unit
    turns = [{"role": "user", "message": f"turn {i}", "time": created_s + i, "secondsFromStart": i} for i in range(3)]
    sim.replace_messages("cozmox", chat_id, turns)

    (summary,) = run_sync(settings)

    assert summary.status == "success"
    assert query(settings.database, "select count(*) from messages where chat_id = ? and kind = 'message'", [chat_id]) == [(3,)]
    assert last_warnings(settings.database).count("3 message(s) are dated more than a day outside") == 1

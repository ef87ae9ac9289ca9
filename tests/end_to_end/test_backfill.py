"""Backfills: windows over an updated-at range, resumable, never moving the incremental watermark."""

from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import HISTORY_END, expected_cozmox, parse_ts, query, watermark

from flows.pipeline import run_backfill, run_sync
from simulator import Fault

SINCE = HISTORY_END - timedelta(days=10)
UNTIL = HISTORY_END - timedelta(days=2)


def in_range(sim, source: str) -> set[str]:
    chats = sim.cozmox_chats() if source == "cozmox" else sim.invent_chats()
    field = "updatedAt" if source == "cozmox" else "updated_at"
    return {c["id"] for c in chats if SINCE <= parse_ts(c[field]) < UNTIL}


def held(database: str, source: str) -> set[str]:
    return {r[0] for r in query(database, "select chat_id from chats where source = ?", [source])}


def test_a_backfill_loads_exactly_the_range_and_leaves_the_watermark(sim, settings):
    run_sync(settings, "cozmox")
    mark = watermark(settings.database)
    with_range_only = settings.model_copy(update={"database": settings.database + ".bf"})

    (summary,) = run_backfill(with_range_only, SINCE, UNTIL, "cozmox", timedelta(days=1))

    assert summary.status == "success" and summary.mode == "backfill"
    assert held(with_range_only.database, "cozmox") == in_range(sim, "cozmox")
    assert watermark(with_range_only.database) is None
    assert query(with_range_only.database, "select count(*) from backfill_windows") == [(8,)]

    (again,) = run_backfill(settings, SINCE, UNTIL, "cozmox", timedelta(days=1))
    assert again.status == "success" and watermark(settings.database) == mark


def test_a_killed_backfill_resumes_without_refetching_finished_windows(sim, settings):
    sim.add_fault(Fault(kind="status", status=500, times=-1, source="cozmox", after=5))
    (broken,) = run_backfill(settings, SINCE, UNTIL, "cozmox", timedelta(days=1))
    assert broken.status == "failed"
    finished = query(settings.database, "select window_start, window_end from backfill_windows order by 1")
    assert 0 < len(finished) < 8
    sim.clear_faults()
    sim.reset_requests()

    (resumed,) = run_backfill(settings, SINCE, UNTIL, "cozmox", timedelta(days=1))

    assert resumed.status == "success"
    # all but the one request that names the org (a single chat, unfiltered)
    asked = [r.params for r in sim.requests if r.source == "cozmox" and r.params != {"limit": "1"}]
    for params in asked:
        start = parse_ts(params["updatedAtGe"])
        assert not any(ws <= start < we for ws, we in finished), "a finished window was read again"
    assert held(settings.database, "cozmox") == in_range(sim, "cozmox")
    want = expected_cozmox(sim)["messages"]
    got = dict(query(settings.database, "select chat_id, count(*) from messages group by 1"))
    assert got == {cid: want[cid] for cid in in_range(sim, "cozmox") if want[cid]}

    sim.reset_requests()
    (done,) = run_backfill(settings, SINCE, UNTIL, "cozmox", timedelta(days=1))
    # one request, that names the org, and nothing read
    assert (done.chats_fetched, sim.request_count("cozmox")) == (0, 1)


@pytest.mark.parametrize("sim_options", [{"cozmox_chats": 10, "invent_chats": 80}])
def test_an_invent_backfill_loads_the_range_from_the_newest_first_walk(sim, invent_settings):
    (summary,) = run_backfill(invent_settings, SINCE, UNTIL, "invent", timedelta(days=2))

    assert summary.status == "success"
    assert held(invent_settings.database, "invent") == in_range(sim, "invent")
    assert watermark(invent_settings.database, "invent") is None
    asked = {r.path for r in sim.requests if "/messages" in r.path}
    assert len(asked) == len(in_range(sim, "invent"))

    sim.reset_requests()
    (again,) = run_backfill(invent_settings, SINCE, UNTIL, "invent", timedelta(days=2))
    # one request, that names the org, and nothing read
    assert again.chats_fetched == 0 and sim.request_count("invent") == 1

"""SIGKILL at many points of a sync and of a backfill: the next run ends equal to the API, with
no duplicates and nothing lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import API_KEY, HISTORY_END, assert_invent_matches, assert_warehouse_matches, query

from flows.pipeline import run_backfill, run_sync

RUNNER = Path(__file__).with_name("crash_runner.py")
ROOT = Path(__file__).resolve().parents[2]  # the checkout, for the runner's imports
POINTS = [("request", 4), ("request", 9), ("load", 1), ("load", 5), ("rows", 2), ("rows", 4),
          ("commit", 1), ("commit", 4)]
FAST = {("request", 4), ("rows", 2), ("commit", 4)}  # make test; the rest with make test-all


def cases(points):
    return [pytest.param(p, n, id=f"{p}-{n}", marks=[] if (p, n) in FAST else [pytest.mark.slow]) for p, n in points]


@pytest.fixture
def sim_options():
    return {"cozmox_chats": 90, "invent_chats": 30}


def crash(settings, mode: str, point: str, n: int) -> None:
    env = dict(os.environ, CHATSYNC_DATABASE=settings.database, COZMOX_BASE_URL=settings.cozmox_base_url,
               COZMOX_API_KEY=API_KEY, INVENT_BASE_URL=settings.invent_base_url, INVENT_API_KEY=API_KEY,
               CHATSYNC_PAGE_SIZE=str(settings.page_size), CHATSYNC_SAFETY_MARGIN_SECONDS="0",
               CHATSYNC_INVENT_REQUESTS_PER_MINUTE="0", CHATSYNC_INVENT_CONCURRENCY="1",
               BACKFILL_SINCE=(HISTORY_END - timedelta(days=30)).isoformat(),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, str(RUNNER), mode, point, str(n)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, f"the run was not killed at {point} {n}: {done.stdout}{done.stderr}"


def both(settings):
    return settings.model_copy(update={"invent_api_key": API_KEY, "invent_requests_per_minute": 0})


def no_duplicates(database):
    for table, key in (("chats", "source, chat_id"), ("messages", "source, message_id"), ("costs", "source, chat_id, seq")):
        assert query(database, f"select count(*) - count(distinct ({key})) from {table}") == [(0,)], table


@pytest.mark.parametrize("point, n", cases(POINTS))
def test_a_sync_killed_anywhere_is_made_whole_by_the_next(sim, settings, point, n):
    settings = both(settings)
    run_sync(settings)
    for source in ("cozmox", "invent"):
        for chat_id in sim.chat_ids(source)[::2]:
            sim.touch(source, chat_id)

    crash(settings, "sync", point, n)
    summaries = run_sync(settings)

    assert [s.status for s in summaries] == ["success", "success"]
    assert_warehouse_matches(sim, settings.database)
    assert_invent_matches(sim, settings.database)
    no_duplicates(settings.database)
    statuses = dict(query(settings.database, "select status, count(*) from sync_runs group by 1"))
    assert statuses.get("interrupted", 0) >= 1  # the killed run is marked, not left running
    assert "running" not in statuses


@pytest.mark.parametrize("point, n", cases(POINTS[::2]))
def test_a_backfill_killed_anywhere_resumes_to_the_same_end(sim, settings, point, n):
    settings = both(settings)
    since = HISTORY_END - timedelta(days=30)

    crash(settings, "backfill", point, n)
    summaries = run_backfill(settings, since)

    assert [s.status for s in summaries] == ["success", "success"]
    assert_warehouse_matches(sim, settings.database)
    assert_invent_matches(sim, settings.database)
    no_duplicates(settings.database)
    assert query(settings.database, "select count(*) from sync_state") == [(0,)]


@pytest.mark.parametrize("sim_options", [{"cozmox_chats": 60, "invent_chats": 30}])
def test_two_accounts_synced_at_once_take_turns_on_the_file(sim, settings):
    """Two deployments of different accounts on one warehouse: each request stalls a little, so
    one holds the file while the other starts; the other waits for it instead of failing."""
    from simulator import Fault

    sim.add_fault(Fault(kind="stall", seconds=0.1, times=-1))
    script = ("import sys; from flows.pipeline import run_sync; from flows.settings import Settings\n"
              "print(run_sync(Settings(), sys.argv[1])[0].status)")
    env = dict(os.environ, CHATSYNC_DATABASE=settings.database, COZMOX_BASE_URL=settings.cozmox_base_url,
               INVENT_BASE_URL=settings.invent_base_url, COZMOX_API_KEY=API_KEY, INVENT_API_KEY=API_KEY,
               CHATSYNC_INVENT_REQUESTS_PER_MINUTE="0", CHATSYNC_PAGE_SIZE="20",
               CHATSYNC_SAFETY_MARGIN_SECONDS="0", CHATSYNC_WAIT="2m", PYTHONPATH=str(ROOT))
    runs = [subprocess.Popen([sys.executable, "-c", script, source], env=env, stdout=subprocess.PIPE, text=True)
            for source in ("cozmox", "invent")]
    outcomes = [(run.wait(timeout=180), run.stdout.read().strip()) for run in runs]

    assert outcomes == [(0, "success"), (0, "success")]
    assert_warehouse_matches(sim, settings.database)
    assert_invent_matches(sim, settings.database)
    assert sorted(query(settings.database, "select source, status from sync_runs")) == [
        ("cozmox", "success"), ("invent", "success")]

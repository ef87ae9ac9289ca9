"""The process-wide tweaks of flows/runtime.py change speed and memory, never rows."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import query

# A sync in a fresh process (the tweaks are process-wide), with or without the tweaks.
SYNC = ("import sys; from flows import runtime; runtime.apply(); print(sorted(runtime._active));"
        " from flows.pipeline import run_sync; from flows.settings import Settings;"
        " sys.exit(0 if all(s.status == 'success' for s in run_sync(Settings())) else 1)")
# What a run writes that is its own (when, which run), left out of the comparison.
RUN_COLUMNS = {"loaded_at", "received_at", "run_id"}


@pytest.fixture
def sim_options() -> dict:
    return {"cozmox_chats": 80, "invent_chats": 20}


def rows(database: str) -> dict[str, list[tuple]]:
    tables = ("chats", "messages", "usage", "costs", "chat_members", "message_files", "rejected_records")
    out = {}
    for table in tables:
        columns = [c for (c,) in query(database, "select column_name from duckdb_columns() where table_name = ?",
                                       [table]) if c not in RUN_COLUMNS]
        out[table] = query(database, f"select {', '.join(columns)} from {table} order by all")
    return out


def test_a_sync_gives_the_same_rows_with_every_tweak_off(sim, settings, tmp_path):
    results = {}
    for tweaks in ("on", "off"):
        database = str(tmp_path / f"tweaks-{tweaks}.duckdb")
        env = {**os.environ, "CHATSYNC_DATABASE": database, "COZMOX_BASE_URL": settings.cozmox_base_url,
               "COZMOX_API_KEY": "sim-key", "INVENT_BASE_URL": settings.invent_base_url,
               "INVENT_API_KEY": "sim-key", "CHATSYNC_INVENT_REQUESTS_PER_MINUTE": "0",
               "CHATSYNC_TWEAKS": tweaks}
        done = subprocess.run([sys.executable, "-c", SYNC], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        results[tweaks] = (done.stdout.splitlines()[0], rows(database))

    assert results["off"][0] == "[]" and "quick_handoffs" in results["on"][0]
    assert results["on"][1] == results["off"][1]
    assert len(results["on"][1]["chats"]) == 100 and results["on"][1]["messages"]


def test_arrow_still_turns_times_into_python_once_pandas_is_marked_absent():
    # In a fresh process: whether Arrow has looked for pandas yet is process-wide.
    code = ("import datetime, pyarrow as pa; from flows import runtime; runtime.apply();"
            " print(pa.array([datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)],"
            " pa.timestamp('us', tz='UTC')).to_pylist()[0].year)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "2026"

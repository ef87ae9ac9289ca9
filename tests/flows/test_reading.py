"""People read the warehouse while syncs write it: the read copy, read-only commands, and a
writer that waits its turn and then names who is in the way.

Writers and readers here are separate processes, as they are for users: DuckDB's file lock
only separates processes.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from helpers import assert_warehouse_matches, query

from flows.cli import main
from flows.pipeline import run_sync
from load.read_copy import read_copy_path
from load.warehouse import missed_runs_path, record_missed_run


@pytest.fixture
def sim_options() -> dict:
    return {"cozmox_chats": 60}


# A sync in a process of its own, with the settings the environment gives it.
SYNC = ("import sys; from flows.pipeline import run_sync; from flows.settings import Settings;"
        " sys.exit(0 if all(s.status == 'success' for s in run_sync(Settings())) else 1)")

# Holds the read copy open read-only, and answers on the same connection each time it is asked.
READER = """
import duckdb, sys
con = duckdb.connect(sys.argv[1], read_only=True)
def answer():
    chats, orphans = con.execute(
        "select (select count(*) from chats),"
        " (select count(*) from messages m anti join chats c using (source, chat_id))").fetchone()
    print(chats, orphans, flush=True)
answer()
for _ in sys.stdin:
    answer()
"""


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def chats(database: str) -> int:
    return query(database, "select count(*) from chats")[0][0]


def test_a_reader_holding_the_read_copy_open_keeps_its_view_across_two_syncs(sim, settings):
    run_sync(settings)
    read_copy = settings.read_copy
    assert read_copy == str(Path(settings.database).with_name("warehouse.read.duckdb"))
    reader = subprocess.Popen([sys.executable, "-c", READER, read_copy],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        first = reader.stdout.readline().split()
        sim.add_chats("cozmox", 4)
        (second,) = run_sync(settings)
        sim.add_chats("cozmox", 3)
        (third,) = run_sync(settings)
        reader.stdin.write("again\n")
        reader.stdin.flush()
        after = reader.stdout.readline().split()
    finally:
        reader.communicate("")

    assert (second.status, third.status) == ("success", "success")
    assert first == after == ["60", "0"]  # the copy it opened, whole, as it was
    assert chats(read_copy) == chats(settings.database) == 67  # the next open sees the new copy
    assert_warehouse_matches(sim, read_copy)


def test_query_answers_from_the_read_copy_while_a_sync_holds_the_warehouse(sim, settings, cli_env, capsys,
                                                                          monkeypatch):
    run_sync(settings)
    sim.add_chats("cozmox", 5)
    monkeypatch.setenv("CHATSYNC_TIMEOUT_SECONDS", "120")
    reached, release = threading.Event(), threading.Event()

    @sim.on_request
    def hold_the_first_request(info):
        if not reached.is_set():
            reached.set()
            release.wait(120)

    writer = subprocess.Popen([sys.executable, "-c", SYNC], stderr=subprocess.PIPE, text=True)
    try:
        assert reached.wait(120), "the sync never asked the API"
        code, out, err = run(capsys, "query", "select count(*) as n from chats", "--format", "csv")
        still_writing = writer.poll() is None
    finally:
        release.set()
        _, writer_err = writer.communicate(timeout=120)

    assert still_writing  # the answer did not wait for the sync
    assert (code, out) == (0, "n\n60\n")
    assert "is being written by" in err and f"(PID {writer.pid})" in err
    assert f"reading the read copy {settings.read_copy}, published" in err
    assert writer.returncode == 0, writer_err
    assert chats(settings.read_copy) == 65


def test_a_held_warehouse_makes_a_sync_wait_then_fail_naming_the_holder_and_status_shows_it(
        sim, settings, cli_env, capsys):
    run_sync(settings)
    before = query(settings.database, "select count(*), max(watermark) from chats, sync_state")
    sim.touch("cozmox", sim.chat_ids("cozmox")[0])
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True);"
         " sys.stdin.read()", settings.database],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        code, _, err = run(capsys, "sync", "--wait", "1s")
        status_code, status_out, status_err = run(capsys, "status")
    finally:
        holder.communicate("")

    assert code == 1 and err.count("\n") == 1
    assert f"database {settings.database} is busy: it is held by" in err and f"(PID {holder.pid})" in err
    assert "after waiting 1s" in err
    # status, read-only, reads the copy and already shows the run that never got its turn
    assert status_code == 0 and "reading the read copy" in status_err
    assert "failed" in status_out and "is busy" in status_out
    assert query(settings.database, "select count(*), max(watermark) from chats, sync_state") == before

    (next_run,) = run_sync(settings)  # the next writer records it in sync_runs
    assert next_run.status == "success"
    assert_warehouse_matches(sim, settings.database)
    failed = query(settings.database, "select account, mode, error from sync_runs where status = 'failed'")
    assert len(failed) == 1 and failed[0][:2] == ("cozmox", "incremental") and f"PID {holder.pid}" in failed[0][2]
    assert not missed_runs_path(settings.database).exists()


def test_query_refuses_a_statement_that_writes_and_leaves_the_warehouse_alone(sim, settings, cli_env, capsys):
    run_sync(settings)
    for statement in ("create table oops (x int)", "delete from chats",
                      f"copy chats to '{settings.database}.csv'", "attach 'other.duckdb'",
                      "select 1; delete from chats"):
        code, _, err = run(capsys, "query", statement)
        assert code == 1 and err.startswith("chatsync: "), statement
    assert "only statements that read" in run(capsys, "query", "delete from chats")[2]
    assert chats(settings.database) == 60
    assert query(settings.database, "select count(*) from duckdb_tables() where table_name = 'oops'") == [(0,)]
    assert not Path(f"{settings.database}.csv").exists()


def test_reading_commands_on_a_missing_warehouse_say_so_and_create_nothing(tmp_path, capsys):
    missing = tmp_path / "typo.duckdb"
    for argv in (["query", "select 1"], ["status"], ["export", str(tmp_path / "out")]):
        code, _, err = run(capsys, *argv, "--database", str(missing))
        assert code == 1 and f"no warehouse at {missing}" in err, argv
    assert sorted(p.name for p in tmp_path.iterdir()) == []


KILLED_PUBLISH = """
import os, signal
real = os.sendfile
def half_then_killed(out, src, offset, count):
    real(out, src, offset, count // 2)
    os.kill(os.getpid(), signal.SIGKILL)
os.sendfile = half_then_killed
""" + SYNC


def test_a_publish_killed_half_way_leaves_the_last_copy_whole_and_the_next_run_publishes(sim, settings,
                                                                                        cli_env):
    run_sync(settings)
    sim.add_chats("cozmox", 6)

    killed = subprocess.run([sys.executable, "-c", KILLED_PUBLISH], capture_output=True, text=True, timeout=120)

    assert killed.returncode == -9
    assert chats(settings.database) == 66  # loaded, then killed while publishing
    assert chats(settings.read_copy) == 60  # the last copy, whole
    assert list(Path(settings.read_copy).parent.glob("*.tmp-*"))  # the half copy, never renamed
    (quiet,) = run_sync(settings)  # nothing new upstream: it publishes what the killed run could not
    assert quiet.chats_upserted == 0
    assert chats(settings.read_copy) == 66
    assert not list(Path(settings.read_copy).parent.glob("*.tmp-*"))


def test_export_writes_the_schema_and_views_with_the_data(sim, settings, tmp_path, capsys):
    run_sync(settings)
    out = tmp_path / "export"
    code, printed, _ = run(capsys, "export", str(out), "--database", settings.database)
    assert code == 0 and "tables and the schema" in printed
    con = duckdb.connect()
    con.execute(f"import database '{out}'")
    assert con.execute("select count(*) from chats").fetchone()[0] == 60
    assert con.execute("select count(*) from chat_summary").fetchone()[0] == 60  # a view came along


def test_motherduck_has_no_read_copy_and_no_lock_bookkeeping(tmp_path, monkeypatch):
    """MotherDuck has no file lock and its readers use read scaling; nothing here reaches it."""
    monkeypatch.chdir(tmp_path)
    assert read_copy_path("md:chats") is None
    assert read_copy_path("md:chats", "elsewhere.duckdb") == "elsewhere.duckdb"
    assert read_copy_path("w.duckdb") == "w.read.duckdb" and read_copy_path("w.db") == "w.db.read.duckdb"
    assert read_copy_path("w.duckdb", "off") is None
    record_missed_run("md:chats", [("cozmox", "cozmox")], "incremental", datetime.now(UTC), "busy")
    assert list(tmp_path.iterdir()) == []

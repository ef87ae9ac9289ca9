"""What a sync's warehouse does as it closes: the last checkpoint on every core, and a close
that still ends when DuckDB has given up on the connection."""

from __future__ import annotations

import logging

import duckdb

from load import warehouse
from load.warehouse import Warehouse


def test_the_checkpoint_at_close_runs_on_every_core_after_a_sync_kept_duckdb_to_one(tmp_path, monkeypatch):
    threads_at_checkpoint = []
    publish = warehouse.publish_and_close

    def publish_noting_threads(con, database, read_copy):
        threads_at_checkpoint.append(con.execute("select current_setting('threads')").fetchone()[0])
        publish(con, database, read_copy)

    monkeypatch.setattr(warehouse, "publish_and_close", publish_noting_threads)
    default_threads = duckdb.connect().execute("select current_setting('threads')").fetchone()[0]
    database, copy = str(tmp_path / "w.duckdb"), str(tmp_path / "w.read.duckdb")
    held = Warehouse(database, read_copy=copy)
    held.bound_memory()
    assert held.scalar("select current_setting('threads')") == 1  # the loads' one thread
    held.close()

    assert threads_at_checkpoint == [default_threads]
    with duckdb.connect(copy, read_only=True) as reader:  # published all the same
        assert reader.execute("select count(*) from chats").fetchone() == (0,)


def test_a_close_after_duckdb_gave_up_on_the_connection_still_ends(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="chatsync")
    held = Warehouse(str(tmp_path / "w.duckdb"), read_copy=str(tmp_path / "w.read.duckdb"))
    held.bound_memory()
    held.con.close()  # stands for a connection a fatal error has invalidated: every statement fails

    held.close()

    assert any("was not published" in r.getMessage() for r in caplog.records)

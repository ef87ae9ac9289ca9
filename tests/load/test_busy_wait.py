"""A writer that finds the warehouse held waits, saying who holds it, then names the holder."""

from __future__ import annotations

import logging
import subprocess
import sys

import duckdb
import pytest

from load import warehouse
from load.errors import DatabaseBusy
from load.warehouse import Warehouse


def test_a_writer_waits_saying_who_holds_the_warehouse_then_names_them(tmp_path, caplog, monkeypatch):
    database = str(tmp_path / "held.duckdb")
    duckdb.connect(database).close()
    monkeypatch.setattr(warehouse, "WAIT_REPORT_SECONDS", 0.2)  # a line every 0.2 s, not 5 s
    caplog.set_level(logging.WARNING, logger="chatsync")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True);"
         " sys.stdin.read()", database],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DatabaseBusy) as busy:
            Warehouse(database, wait_seconds=1)
    finally:
        holder.communicate("")

    assert f"(PID {holder.pid}) after waiting 1s" in str(busy.value)
    waiting = [r.getMessage() for r in caplog.records if "waiting up to" in r.getMessage()]
    assert len(waiting) >= 2 and all("is held by" in line and f"(PID {holder.pid})" in line for line in waiting)

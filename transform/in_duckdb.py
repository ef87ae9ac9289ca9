"""Flattening in DuckDB: JSON into rows in C++, beside the interpreter rather than under its lock.

Each thread that flattens keeps an in-memory DuckDB of its own, apart from the warehouse: it
holds nothing between pages, and a page's query never waits on a load.
"""

from __future__ import annotations

import threading

import duckdb
import pyarrow as pa

# What one page's query may hold: pages are a few MB of JSON, and a page that needs more falls
# back to flattening in Python.
MEMORY_MIB = 256
# Rows of a result's Arrow batches. DuckDB reserves a batch's room for this many rows in every
# column, and the table holds it while it lives: at DuckDB's default of 1,000,000 rows, each
# page's rows held about 80 MB until loaded (a page of 100 Cozmox chats is about 2,000 rows).
ARROW_BATCH_ROWS = 8192

_local = threading.local()


def _connection() -> duckdb.DuckDBPyConnection:
    con: duckdb.DuckDBPyConnection | None = getattr(_local, "con", None)
    if con is None:
        con = duckdb.connect()
        con.execute(f"set threads = 1; set memory_limit = '{MEMORY_MIB}MiB'; set TimeZone = 'UTC'")
        _local.con = con
    return con


def queries(reads: dict[str, str], selects: dict[str, str], **tables: pa.Table) -> dict[str, pa.Table]:
    """The results of several queries over temporary tables that `reads` makes once each, in
    order (name -> query), of the given tables, each named as its keyword."""
    con = _connection()
    for name, table in tables.items():
        con.register(name, table)
    try:
        for name, sql in reads.items():
            con.execute(f"create or replace temp table {name} as {sql}")
        return {name: con.execute(sql).to_arrow_table(ARROW_BATCH_ROWS) for name, sql in selects.items()}
    finally:
        for name in reads:
            con.execute(f"drop table if exists {name}")
        for name in tables:
            con.unregister(name)
